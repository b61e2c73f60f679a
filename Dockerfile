# Multi-stage build: compile with the full Rust toolchain, run on slim Debian
# as a non-root user.
FROM rust:1-bookworm AS build
# librdkafka's TLS, SCRAM and OAUTHBEARER link the system OpenSSL.
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo reads every member and target the workspace declares, even to
# build one binary: the dev-only test kit and the benchmarks' sources; the
# consumer kit, openim-sync and the OpenTelemetry crate they share are
# built too (one image, two binaries).
# (tests/deploy_image.rs lays out this context and runs this command.)
COPY test-kit ./test-kit
COPY benches ./benches
COPY events ./events
COPY sync ./sync
COPY otel ./otel
RUN cargo build --release --locked --bin openim-bridge --bin openim-sync

FROM debian:bookworm-slim
# libssl3: librdkafka's TLS at run time; ca-certificates: the system roots
# that kafka.ssl_ca_file / rabbitmq.tls_ca_file default to.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home bridge \
    && mkdir -p /var/lib/openim-bridge/spool && chown -R bridge /var/lib/openim-bridge
COPY --from=build /src/target/release/openim-bridge /usr/local/bin/openim-bridge
# The reference consumer (docker-compose.yml profile `sync`):
# `--entrypoint /usr/local/bin/openim-sync`.
COPY --from=build /src/target/release/openim-sync /usr/local/bin/openim-sync
COPY deploy/openim-bridge.example.toml /etc/openim-bridge/openim-bridge.example.toml
USER bridge
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENV OPENIM_BRIDGE__LOG__FORMAT=json \
    OPENIM_BRIDGE__SPOOL__DIR=/var/lib/openim-bridge/spool
# The spool holds acked events until the broker confirms them: keep it on a
# volume of its own, one per replica.
VOLUME /var/lib/openim-bridge/spool
ENTRYPOINT ["/usr/local/bin/openim-bridge"]
