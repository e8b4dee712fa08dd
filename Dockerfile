# tokend's container image, from the repository root:
#   docker build --build-arg TOKEND_BUILD_COMMIT=$(git rev-parse HEAD) -t tokend:0.1.0 .
#
# No Docker engine runs in this project's CI, so this file is not built there: keep it simple
# and check it by hand when it changes.
#
# Build stage: the full Rust toolchain on Debian 12. protoc comes from the protoc-bin-vendored
# crate, so nothing else is installed.
FROM rust:1-bookworm AS build
# The commit `tokend --version` and tokend_build_info report (build.rs); the context holds no
# .git, so the builder passes it: --build-arg TOKEND_BUILD_COMMIT=$(git rev-parse HEAD).
ARG TOKEND_BUILD_COMMIT=""
ENV TOKEND_BUILD_COMMIT=$TOKEND_BUILD_COMMIT
WORKDIR /src
COPY . .
# --locked: build exactly the dependency versions in Cargo.lock. The cache mounts (BuildKit)
# keep downloaded crates and compiled dependencies between builds; the binary is copied out of
# the cached target folder in the same step, since the cache is not part of the image.
# --no-default-features leaves out `tokend dev` and the embedded emulator: the image holds no
# test code.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tokend --no-default-features \
    && cp target/release/tokend /tokend

# Runtime stage: distroless "cc" holds glibc, libgcc and CA certificates and nothing else (no
# shell, no package manager); it is Debian 12, the same glibc the build stage linked against.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /tokend /tokend
# uid/gid 65532; deploy/base/deployment.yaml states the same ids numerically so the kubelet can
# verify runAsNonRoot.
USER nonroot
# gRPC (TokenService, health, reflection) and Prometheus metrics (--metrics-listen).
EXPOSE 50051 9090
ENTRYPOINT ["/tokend"]
# `serve` listens on 127.0.0.1:50051 by default, unreachable from outside the container: pass
# `serve --listen 0.0.0.0:50051` (as the Deployment does) to expose it.
CMD ["serve"]
