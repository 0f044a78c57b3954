# Build stage: compile the release binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked && strip target/release/whatsapp-api

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
