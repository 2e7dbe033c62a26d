# Builds ngx_http_grpc_guard_module against the image's nginx (Debian
# bookworm's 1.22.1, with its nginx-dev sources) and loads it.
#
#   docker build -t nginx-grpc-guard .
#   docker run --rm -p 8443:8443 -v $PWD/my.conf:/etc/nginx/conf.d/my.conf \
#       nginx-grpc-guard

FROM debian:bookworm AS build

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       build-essential nginx nginx-dev libpcre2-dev zlib1g-dev libssl-dev \
       libjansson-dev libhiredis-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY config Makefile ./
COPY src ./src
COPY ci/build.sh ./ci/build.sh

RUN ci/build.sh


FROM debian:bookworm-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       nginx libjansson4 libhiredis0.14 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log

COPY --from=build /src/objs/ngx_http_grpc_guard_module.so \
     /usr/lib/nginx/modules/ngx_http_grpc_guard_module.so

RUN mkdir -p /etc/nginx/modules-enabled \
    && echo 'load_module /usr/lib/nginx/modules/ngx_http_grpc_guard_module.so;' \
        > /etc/nginx/modules-enabled/50-mod-http-grpc-guard.conf \
    && nginx -t

EXPOSE 8443

CMD ["nginx", "-g", "daemon off;"]
