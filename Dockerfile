# syntax=docker/dockerfile:1
#
# tessera's image: `tessera` as the entry point, run as an unprivileged user.
#
#   docker build -t tessera .
#   docker run --rm -p 8000:8000 tessera serve demo --host 0.0.0.0
#
# The API node is `serve config /etc/tessera/config.yml`, the worker `worker --config ...`;
# the Helm chart (helm/tessera) and docker-compose.yml run it so.

# The toolchain of rust-toolchain.toml, on the Debian release of the runtime stage, so the
# shared libraries the binary links are the ones the runtime stage installs.
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends libhdf5-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and the target directory persist between builds in cache mounts; the binary is
# copied out of the mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tessera \
 && install -D -m 0755 target/release/tessera /out/tessera

FROM debian:bookworm-slim AS runtime
# Exactly the Debian packages owning the shared libraries `ldd` lists for the binary (libhdf5
# and what it links), plus CA certificates for HTTPS (OpenID providers, buckets).
# tests/compat/test_deploy.py checks the list against the binary.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libhdf5-103-1 \
      libaec0 libsz2 zlib1g libzstd1 libgcc-s1 libstdc++6 \
      libcurl4 libnghttp2-14 libidn2-0 libunistring2 librtmp1 libssh2-1 libpsl5 libssl3 \
      libbrotli1 libgnutls30 libhogweed6 libnettle8 libgmp10 libp11-kit0 libffi8 libtasn1-6 \
      libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 \
      libldap-2.5-0 libsasl2-2 \
 && rm -rf /var/lib/apt/lists/*
# uid 10001 is the chart's podSecurityContext.runAsUser. Written data goes to
# /var/lib/tessera/data (a volume in the compose cluster, owned by this user).
RUN groupadd --system --gid 10001 tessera \
 && useradd --system --uid 10001 --gid tessera --home-dir /var/lib/tessera --shell /usr/sbin/nologin tessera \
 && install -d -o tessera -g tessera /var/lib/tessera /var/lib/tessera/data /etc/tessera
COPY --from=builder /out/tessera /usr/local/bin/tessera
USER 10001:10001
WORKDIR /var/lib/tessera
EXPOSE 8000
ENTRYPOINT ["tessera"]
CMD ["--help"]
