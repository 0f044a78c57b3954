# Build stage: compile the release binary.
FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace (see .dockerignore): the manifest names the test crates and
# targets, which must exist even though a release build does not compile them.
COPY . .
RUN cargo build --release --locked -p whatsapp-api && strip target/release/whatsapp-api

# Runtime stage: the binary, ffmpeg for media, CA certificates for WhatsApp. The
# packages are listed in docker/runtime-packages.txt, which scripts/container-smoke
# also builds its root filesystem from (CI runs it; no Docker engine needed).
FROM debian:bookworm-slim
COPY docker/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
    && apt-get install -y --no-install-recommends $(grep -v '^#' /tmp/runtime-packages.txt) \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
    && useradd --system --create-home --home-dir /app --uid 10001 whatsapp
WORKDIR /app
COPY --from=build /src/target/release/whatsapp-api /usr/local/bin/whatsapp-api
COPY --chown=whatsapp:whatsapp statics ./statics
RUN mkdir -p storages statics/images/qrcode && chown -R whatsapp:whatsapp /app
USER whatsapp
VOLUME ["/app/storages"]
EXPOSE 3000
# The binary asks its own /health (no curl in the image); --port must match.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["whatsapp-api", "health"]
# Docker stops with SIGTERM and waits 10 s: the server finishes within that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["whatsapp-api"]
