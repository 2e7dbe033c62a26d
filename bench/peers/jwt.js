/*
 * The peer the guard is compared with: an RS256 JWT checked in njs, as an
 * nginx user without the module writes it (Debian libnginx-mod-http-js,
 * njs 0.7.9, WebCrypto).  Used as a js_content handler behind auth_request,
 * either in the front nginx itself (peer_njs) or in a second nginx that
 * serves as the auth service (peer_auth_request*): 200 lets the call
 * through, 401 refuses it.
 *
 * It checks what the guard's JWT stage checks for these tokens, so that the
 * comparison is fair:
 *   - "Authorization: Bearer" with three base64url parts;
 *   - the header's alg is RS256 (pinned) and it has no "crit";
 *   - the RS256 signature over the first two parts, with the key of the
 *     location's $bench_jwt_spki (base64 DER SubjectPublicKeyInfo);
 *   - exp present, a number, not passed; nbf and iat, when present,
 *     numbers not in the future; 60 s of leeway, as the guard's default;
 *   - iss is $bench_jwt_issuer, aud is $bench_jwt_audience or an array
 *     holding it.
 *
 * njs 0.7.9 runs every request in a fresh copy of the VM: nothing a request
 * computes survives it, so the key is imported on every call (the base64
 * text itself comes from the configuration, no file is read per call).
 */

var LEEWAY = 60;

function b64json(s) {
    return JSON.parse(Buffer.from(s, 'base64url').toString());
}

function claimsOk(r, c, now) {
    var aud = c.aud;
    var want = r.variables.bench_jwt_audience;

    if (typeof c.exp !== 'number' || c.exp + LEEWAY <= now) {
        return false;
    }
    if (c.nbf !== undefined
        && (typeof c.nbf !== 'number' || c.nbf - LEEWAY > now))
    {
        return false;
    }
    if (c.iat !== undefined
        && (typeof c.iat !== 'number' || c.iat - LEEWAY > now))
    {
        return false;
    }
    if (c.iss !== r.variables.bench_jwt_issuer) {
        return false;
    }
    if (Array.isArray(aud)) {
        return aud.indexOf(want) >= 0;
    }
    return aud === want;
}

async function verify(r) {
    var auth = r.headersIn.Authorization;
    var parts, header, claims, key, ok;

    if (!auth || auth.slice(0, 7) !== 'Bearer ') {
        r.return(401);
        return;
    }

    parts = auth.slice(7).split('.');
    if (parts.length !== 3) {
        r.return(401);
        return;
    }

    try {
        header = b64json(parts[0]);
        claims = b64json(parts[1]);
    } catch (e) {
        r.return(401);
        return;
    }

    if (header.alg !== 'RS256' || header.crit !== undefined
        || !claimsOk(r, claims, Date.now() / 1000))
    {
        r.return(401);
        return;
    }

    try {
        key = await crypto.subtle.importKey('spki',
                  Buffer.from(r.variables.bench_jwt_spki, 'base64'),
                  {name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256'},
                  false, ['verify']);
        ok = await crypto.subtle.verify({name: 'RSASSA-PKCS1-v1_5'}, key,
                 Buffer.from(parts[2], 'base64url'),
                 Buffer.from(parts[0] + '.' + parts[1]));
    } catch (e) {
        ok = false;
    }

    r.return(ok ? 200 : 401);
}

export default {verify};
