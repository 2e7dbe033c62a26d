// The OpenID provider of the tests: oidc-provider on loopback, with one
// client ("svc", secret "svc-secret") that gets JWT access tokens
// (typ "at+jwt", RFC 9068) with the client_credentials grant, and its
// JWKS at /jwks; a second client ("opaque", secret "opaque-secret") gets
// opaque access tokens, which the resource server ("rs", secret
// "rs-secret") introspects at /token/introspection (RFC 7662) and their
// owner revokes at /token/revocation (RFC 7009).
//
//   node server.mjs PORT KEYS_FILE LOG_FILE [MODE_FILE]
//       KEYS_FILE  {"keys": [private JWK, ...]}: the first signs; the JWKS
//                  publishes the public half of every one (rotation is a
//                  restart with another file)
//       LOG_FILE   one JSON line per request: method, url, headers
//       MODE_FILE  read on every request to /jwks: "garbage", "html",
//                  "oversized", "empty", "error" or "slow" answer that
//                  instead of the JWKS; anything else (or no file): the
//                  JWKS; the same words after "introspection-" answer that
//                  to /token/introspection instead ("slow" waits 4 s
//                  there), and "introspection-string" answers an "active"
//                  member that is a string
//   node server.mjs --genkey KID [rsa|ec]
//       prints a new private JWK with that kid
//
// Listens on 127.0.0.1 only; prints "ready PORT" when it accepts requests.

import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';

if (process.argv[2] === '--genkey') {
    const kid = process.argv[3];
    const type = process.argv[4] || 'rsa';
    const { privateKey } = type === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = privateKey.export({ format: 'jwk' });
    jwk.kid = kid;
    jwk.use = 'sig';
    jwk.alg = type === 'ec' ? 'ES256' : 'RS256';
    process.stdout.write(JSON.stringify(jwk) + '\n');
    process.exit(0);
}

const [port, keysFile, logFile, modeFile] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const { default: Provider } = await import('oidc-provider');

const jwks = JSON.parse(readFileSync(keysFile, 'utf8'));

const resource = 'urn:grpc-guard:test';

const provider = new Provider(issuer, {
    clients: [{
        client_id: 'svc',
        client_secret: 'svc-secret',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'api:read api:write',
    }, {
        client_id: 'opaque',
        client_secret: 'opaque-secret',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'api:read api:write',
    }, {
        client_id: 'rs',
        client_secret: 'rs-secret',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks,
    scopes: ['api:read', 'api:write'],
    features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        introspection: { enabled: true },
        revocation: { enabled: true },
        resourceIndicators: {
            enabled: true,
            defaultResource: () => resource,
            useGrantedResource: () => true,
            getResourceServerInfo: (ctx, indicator, client) => (
                client.clientId === 'opaque'
                    ? {
                        scope: 'api:read api:write',
                        audience: resource,
                        accessTokenTTL: 600,
                        accessTokenFormat: 'opaque',
                    }
                    : {
                        scope: 'api:read api:write',
                        audience: resource,
                        accessTokenTTL: 600,
                        accessTokenFormat: 'jwt',
                        jwt: { sign: { alg: jwks.keys[0].alg || 'RS256' } },
                    }),
        },
    },
});

provider.on('server_error', (ctx, err) => {
    process.stderr.write(`idp: server_error: ${err && err.stack}\n`);
});

const callback = provider.callback();

function mode() {
    if (!modeFile) {
        return '';
    }

    try {
        return readFileSync(modeFile, 'utf8').trim();
    } catch {
        return '';
    }
}

const server = createServer((req, res) => {
    appendFileSync(logFile, JSON.stringify({
        method: req.method,
        url: req.url,
        headers: req.headers,
        ts: Date.now() / 1000,
    }) + '\n');

    const m = mode();

    if (req.url === '/token/introspection' && m.startsWith('introspection-')) {
        const what = m.slice('introspection-'.length);

        if (what === 'slow') {
            setTimeout(() => callback(req, res), 4000);
            return;
        }

        if (what === 'string') {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end('{"active": "true", "client_id": "opaque"}');
            return;
        }

        if (broken(what, res, { active: true, client_id: 'opaque' })) {
            return;
        }
    }

    if (req.url === '/jwks') {
        if (m === 'slow') {
            setTimeout(() => callback(req, res), 500);
            return;
        }

        if (broken(m, res, { keys: jwks.keys.map(publicJwk) })) {
            return;
        }
    }

    callback(req, res);
});

// a broken answer instead of the provider's: true when there was one
function broken(what, res, good) {
    switch (what) {
    case 'garbage':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"keys": [{"kty": "RSA", "n": ');
        return true;

    case 'html':
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html><body><h1>Service temporarily unavailable'
                + '</h1></body></html>\n');
        return true;

    case 'oversized':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ...good, padding: 'x'.repeat(80 * 1024) }));
        return true;

    case 'empty':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"keys": []}');
        return true;

    case 'error':
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error": "unavailable"}');
        return true;
    }

    return false;
}

function publicJwk(k) {
    const { kty, kid, use, alg, n, e, crv, x, y } = k;
    return { kty, kid, use, alg, n, e, crv, x, y };
}

server.listen(Number(port), '127.0.0.1', () => {
    process.stdout.write(`ready ${port}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => process.exit(0));
}

// gone with the test that started it
const parent = process.ppid;

setInterval(() => {
    try {
        process.kill(parent, 0);
    } catch {
        process.exit(0);
    }
}, 1000).unref();
