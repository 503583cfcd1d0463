# Tollgate in a container: a build stage, then a runtime image with only
# the binary (templates, styles and fonts are compiled into it), the C
# runtime and the CA bundle. Runs as a non-root user; the SQLite database
# lives in the /data volume.
#
#   docker build -t tollgate .
#   docker run -p 8080:8080 -v tollgate-data:/data tollgate
#   docker run -e DATABASE_URL=postgres://… -p 8080:8080 tollgate
FROM rust:1.88-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tollgate \
 && install -d -o 65532 -g 65532 -m 0700 /data

# distroless/cc: glibc, libgcc, CA certificates and a "nonroot" user (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/tollgate /usr/local/bin/tollgate
COPY --from=build --chown=65532:65532 /data /data
ENV TOLLGATE_BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/tollgate.db \
    TOLLGATE_LOG_FORMAT=json
WORKDIR /data
VOLUME ["/data"]
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tollgate"]
CMD ["serve"]
