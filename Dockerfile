# syntax=docker/dockerfile:1
# One image for every role, chosen by the command: `podwire capture` (the node agent: runs as root
# with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, as the Helm chart and docker-compose.yml set it),
# `podwire ingest` and `podwire serve` (the image's non-root user, 65532).
#
#   docker build -t podwire/podwire:0.1.0 .
#   docker build --build-arg CARGO_FEATURES=--no-default-features -t podwire/podwire-agent:0.1.0 .
#       # the agent build: capture, standalone and ingest only (no DataFusion, no dashboard);
#       # 37 MB stripped instead of 137 MB (benchmarks/README.md); Helm: agent.image
#   docker build --target debuginfo --output type=local,dest=debug .   # podwire.debug, for gdb/addr2line
#
# The binary ships without its debug info (the release profile's line tables are most of its
# size); the `debuginfo` target holds them apart, matched by the binary's .gnu_debuglink.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm
# Extra `cargo build` flags: empty for the README's build (every command).
ARG CARGO_FEATURES=""

# The dashboard's page assets, so that the Rust stage needs no Node.js (PODWIRE_WEB_DIST below).
FROM node:22-${DEBIAN}-slim AS web
WORKDIR /src/query/web
COPY query/web/package.json query/web/package-lock.json ./
# Exactly the lockfile's versions; no install scripts (as query/service/build.rs runs it).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY query/web/ ./
RUN node build.cjs /out/web

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
ARG CARGO_FEATURES
# clang and libbpf's headers compile the eBPF programs (capture/build.rs); the image's gcc, make
# and perl build librdkafka with its vendored OpenSSL and zlib. Versions follow the Debian release
# pinned above (its security updates replace exact versions, which would break a pin).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang libbpf-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY --from=web /out/web /web
ENV PODWIRE_WEB_DIST=/web
COPY . .
# The README's build (the workspace's default features), in the release profile. The target
# folder is a cache mount, so the results are copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin podwire ${CARGO_FEATURES:+"$CARGO_FEATURES"} \
    && mkdir -p /out/var/lib/podwire/store \
    && objcopy --only-keep-debug target/release/podwire /out/podwire.debug \
    && objcopy --strip-debug --add-gnu-debuglink=/out/podwire.debug \
        target/release/podwire /out/podwire

FROM scratch AS debuginfo
COPY --from=build /out/podwire.debug /podwire.debug

# glibc, libgcc and CA certificates, nothing else: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="podwire" \
      org.opencontainers.image.description="Pod-to-pod connection history for Kubernetes: capture agent, ingest, query service" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/podwire /usr/local/bin/podwire
# The folder store's default place, owned by 65532; a new named volume mounted on
# /var/lib/podwire starts as a copy, so `serve` finds the (empty) store before ingest runs.
COPY --from=build --chown=65532:65532 /out/var/lib/ /var/lib/
USER 65532:65532
EXPOSE 8080 9464
ENTRYPOINT ["/usr/local/bin/podwire"]
CMD ["--help"]
