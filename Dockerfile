# syntax=docker/dockerfile:1
# One image for every Stocklet binary; compose.yaml picks the binary per container
# with `command:` (stocklet-product, stocklet-order, ..., stocklet-gateway).
#
#   docker build -t stocklet .
#   docker run --rm stocklet stocklet-payment        # needs NATS_URL, DATABASE_URL
#
# Builder: a release build of the whole workspace, with cargo's registry, git and
# target dirs in cache mounts so rebuilds only recompile what changed.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bins \
    && mkdir -p /out \
    && for bin in stocklet stocklet-auth stocklet-user stocklet-product stocklet-warehouse \
                  stocklet-order stocklet-payment stocklet-shipping stocklet-gateway; do \
           cp "target/release/$bin" /out/; \
       done

# Runtime: slim Debian, a non-root user, the binaries and the probes.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/stocklet --create-home stocklet
COPY --from=builder /out/ /usr/local/bin/
# gRPC health checks for compose (grpc.health.v1, which every service serves).
ARG TARGETARCH
ARG GRPC_HEALTH_PROBE_VERSION=v0.4.38
ADD --chmod=755 https://github.com/grpc-ecosystem/grpc-health-probe/releases/download/${GRPC_HEALTH_PROBE_VERSION}/grpc_health_probe-linux-${TARGETARCH} /usr/local/bin/grpc_health_probe
USER stocklet
WORKDIR /var/lib/stocklet
# The defaults listen on 127.0.0.1; compose sets each service's address to 0.0.0.0.
ENV STOCKLET_DATA_DIR=/var/lib/stocklet \
    RUST_LOG=info
CMD ["stocklet"]
