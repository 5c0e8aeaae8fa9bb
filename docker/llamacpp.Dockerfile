# llama.cpp's llama-server for Qwen3 GGUF models on CPU: a multi-stage build.
#
#   podman build -f docker/llamacpp.Dockerfile -t qwen3-ops/llamacpp:<version> .
#   (or scripts/build-images.sh llamacpp: tags by version and skips a build whose tag exists)
#
# Stage "build" compiles llama-server from the llama.cpp source vendored in the pinned
# llama-cpp-python sdist (the same pin as scripts/lib/versions.sh), downloaded from PyPI and checked
# against its sha256. GGML_NATIVE=OFF: a portable binary (x86-64: SSE4.2/AVX/AVX2/FMA/F16C/BMI2, i.e.
# x86-64-v3; arm64: armv8), not tied to the build machine's CPU. Statically linked against ggml.
#
# Stage "server" (the default, the last stage) holds only the binary, libgomp (OpenMP) and curl
# (for the chart's preStop drain and test): no compiler, no source, no package lists. It runs as
# the unprivileged user 10001 and works with a read-only root filesystem. Health checks are the
# chart's probes (an OCI image keeps no HEALTHCHECK).
#
# The model is NOT baked in: mount a GGUF file and point LLAMA_ARG_MODEL at it (default
# /models/model.gguf). To bake one in, build docker/model.Dockerfile on top of this image
# (scripts/build-images.sh --bake-model DIR). Every llama-server option is an environment variable
# LLAMA_ARG_* (see `llama-server --help`); the Helm chart's ConfigMap sets them.

# The base image. Here a locally built stand-in carries this name (scripts/build-test-images.sh);
# in production pin it by digest: --build-arg BASE_IMAGE=debian:bookworm-slim@sha256:<digest>.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
# The pinned source: llama-cpp-python's sdist on PyPI vendors llama.cpp (keep in step with
# scripts/lib/versions.sh; scripts/build-images.sh passes those values).
ARG LLAMA_CPP_PYTHON_VERSION=0.3.36
ARG LLAMA_CPP_PYTHON_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
ARG LLAMA_CPP_PYTHON_URL=https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-0.3.36.tar.gz
# Parallel compile jobs (0: all cores of the build machine).
ARG BUILD_JOBS=0
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates curl g++ cmake ninja-build \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Behind a TLS-intercepting proxy, pass the build host's CA bundle as a build secret (never stored in
# a layer): --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt (scripts/build-images.sh does).
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export CURL_CA_BUNDLE=/run/secrets/ca-bundle; fi \
 && curl -fsSL --retry 3 -o llama-cpp-python.tar.gz "${LLAMA_CPP_PYTHON_URL}" \
 && echo "${LLAMA_CPP_PYTHON_SHA256}  llama-cpp-python.tar.gz" | sha256sum -c - \
 && tar -xzf llama-cpp-python.tar.gz --strip-components=3 \
      "llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp" \
 && rm llama-cpp-python.tar.gz
# LLAMA_USE_PREBUILT_UI would fetch the web UI from a model hub at configure time: keep it OFF.
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF \
      -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
 && cmake --build build --target llama-server -j "$([ "${BUILD_JOBS}" -gt 0 ] && echo "${BUILD_JOBS}" || nproc)" \
 && install -D -m 0755 build/bin/llama-server /out/usr/local/bin/llama-server \
 && strip /out/usr/local/bin/llama-server \
 && install -D -m 0644 LICENSE /out/usr/share/doc/llama.cpp/LICENSE

FROM ${BASE_IMAGE} AS server
ARG LLAMA_CPP_PYTHON_VERSION=0.3.36
ARG IMAGE_VERSION=dev
LABEL org.opencontainers.image.title="qwen3-ops llama.cpp server" \
      org.opencontainers.image.description="llama-server (llama.cpp, portable CPU build) for Qwen3 GGUF models; the model is mounted, not baked" \
      org.opencontainers.image.version="${IMAGE_VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      io.qwen3-ops.llama-cpp-python.version="${LLAMA_CPP_PYTHON_VERSION}"
# libgomp1: llama.cpp's OpenMP threads; curl: the chart's preStop drain and test pod. The installed
# package list is kept in the image (a bill of materials for what the base release served).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/log/apt /var/log/dpkg.log \
 && mkdir -p /usr/share/doc/qwen3-ops \
 && dpkg-query -W -f '${Package}=${Version}\n' > /usr/share/doc/qwen3-ops/packages.txt \
 && groupadd --system --gid 10001 llama \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin llama \
 && install -d -o 10001 -g 10001 -m 0755 /models
COPY --from=build /out/ /
# Listen on every address inside the container (the pod's network namespace); publish the port to
# 127.0.0.1 when running it by hand: podman run -p 127.0.0.1:8080:8080 ...
ENV LLAMA_ARG_HOST=0.0.0.0 \
    LLAMA_ARG_PORT=8080 \
    LLAMA_ARG_MODEL=/models/model.gguf \
    LLAMA_ARG_ENDPOINT_METRICS=1 \
    LLAMA_ARG_OFFLINE=1 \
    LLAMA_ARG_LOG_TIMESTAMPS=1
USER 10001:10001
WORKDIR /models
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/llama-server"]
