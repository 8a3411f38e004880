# syntax=docker/dockerfile:1
# The fieldguard image: the binary and nothing else it needs at run time.
#
#   docker build -t registry.example.com/fieldguard:0.1.0 .
#
# What the image relies on is tested without a container engine by
# helm/tests/test_render_and_run.py: the binary alone, run as 65532:65532
# with no capabilities, no privilege escalation and a read-only filesystem,
# reading only the mounted ConfigMap and Secret and writing only the audit
# volume, serves and hot-reloads. That this file builds is tested by
# helm/tests/test_image.py: it copies exactly what the build stage's COPY
# lines name (less what .dockerignore excludes) into an empty folder and
# runs the RUN step there, offline.
#
# Build stage: the toolchain Cargo.toml asks for (rust-version), on the same
# Debian release as the runtime base, so the binary links against the glibc
# it will find there.
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# The workspace's other member (Cargo.toml, [workspace] members): the core
# crate of decisions the proxy depends on by path.
COPY crates ./crates
COPY src ./src
# Cargo.toml declares the benchmarks; they are not built, but must exist.
COPY benches ./benches
RUN cargo build --release --locked --bin fieldguard

# Runtime: distroless "cc" (glibc, libgcc_s: what the binary links against,
# see `ldd target/release/fieldguard`), no shell, no package manager. Its
# "nonroot" user is 65532:65532, the numeric user the Helm chart runs as.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/fieldguard /usr/local/bin/fieldguard
USER 65532:65532
# The proxy port and the admin port of the Helm chart's layout.
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/fieldguard"]
# The chart's ConfigMap mount; the config decides listeners and paths.
CMD ["run", "--config", "/etc/fieldguard/config/fieldguard.yaml"]
