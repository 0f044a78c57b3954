# Build stage: compile the release binary.
FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace (see .dockerignore): the manifest names the test crates and
# targets, which must exist even though a release build does not compile them.
COPY . .
RUN cargo build --release --locked -p whatsapp-api && strip target/release/whatsapp-api

# Runtime stage: the binary, ffmpeg for videos, CA certificates for WhatsApp.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates ffmpeg tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /app --uid 10001 whatsapp
WORKDIR /app
COPY --from=build /src/target/release/whatsapp-api /usr/local/bin/whatsapp-api
COPY --chown=whatsapp:whatsapp statics ./statics
RUN mkdir -p storages statics/images/qrcode && chown -R whatsapp:whatsapp /app
USER whatsapp
VOLUME ["/app/storages"]
EXPOSE 3000
ENTRYPOINT ["whatsapp-api"]
