# The project's ONNX Runtime server (python -m qwen3ops.ortserver) for Qwen3 ONNX models on CPU.
#
#   podman build -f docker/ortserver.Dockerfile -t qwen3-ops/ortserver:<version> .   (repo root)
#   (or scripts/build-images.sh ortserver: tags by version and skips a build whose tag exists)
#
# Stage "build" makes a virtualenv from roles/onnxruntime_server/files/requirements.txt (the same
# pins the onnxruntime_server role installs on hosts: every package with == and sha256, wheels only,
# no dependency resolution) and byte-compiles the server's code. Stage "server" (the
# default) holds Debian's python3, that virtualenv and the qwen3ops.ortserver package: no pip, no
# compiler, no package lists. It runs as the unprivileged user 10001, with a read-only root
# filesystem.
#
# The model is NOT baked in: mount an ONNX model directory (made by `python -m
# qwen3ops.onnx_export`) and point QWEN3_ORT_MODEL at it (default /models/model). To bake one in,
# build docker/model.Dockerfile on top of this image (scripts/build-images.sh --bake-model DIR).
# Every server option is an environment variable QWEN3_ORT_<OPTION> (python -m qwen3ops.ortserver
# --help); the Helm chart's ConfigMap sets them.

# The base image. Here a locally built stand-in carries this name (scripts/build-test-images.sh);
# in production pin it by digest: --build-arg BASE_IMAGE=debian:bookworm-slim@sha256:<digest>.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY roles/onnxruntime_server/files/requirements.txt /tmp/requirements.txt
# Behind a TLS-intercepting proxy, pass the build host's CA bundle as a build secret (never stored in
# a layer): --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt (scripts/build-images.sh does).
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && python3 -m venv /opt/venv \
 && PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 /opt/venv/bin/pip install \
      --require-hashes --no-deps --only-binary :all: -r /tmp/requirements.txt \
 && { /opt/venv/bin/pip uninstall -y pip setuptools >/dev/null 2>&1 || true; }
COPY qwen3ops/__init__.py /opt/app/qwen3ops/__init__.py
COPY qwen3ops/ortserver/ /opt/app/qwen3ops/ortserver/
RUN find /opt/app -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q /opt/app /opt/venv/lib \
 && /opt/venv/bin/python -c "import sys; sys.path.insert(0, '/opt/app'); import qwen3ops.ortserver.app"

FROM ${BASE_IMAGE} AS server
ARG IMAGE_VERSION=dev
LABEL org.opencontainers.image.title="qwen3-ops ONNX Runtime server" \
      org.opencontainers.image.description="python -m qwen3ops.ortserver (onnxruntime, CPU) for Qwen3 ONNX models; the model is mounted, not baked" \
      org.opencontainers.image.version="${IMAGE_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# python3: the interpreter the virtualenv was made with (same base, same path); curl: the chart's
# test pod and preStop hook. The installed package list is kept in the image (a bill of materials).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 curl \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/log/apt /var/log/dpkg.log \
 && mkdir -p /usr/share/doc/qwen3-ops \
 && dpkg-query -W -f '${Package}=${Version}\n' > /usr/share/doc/qwen3-ops/packages.txt \
 && groupadd --system --gid 10001 qwen3 \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin qwen3 \
 && install -d -o 10001 -g 10001 -m 0755 /models
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/app /opt/app
COPY roles/onnxruntime_server/files/requirements.txt /usr/share/doc/qwen3-ops/requirements.txt
# Listen on every address inside the container (the pod's network namespace); publish the port to
# 127.0.0.1 when running it by hand: podman run -p 127.0.0.1:8080:8080 ...
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/opt/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    QWEN3_ORT_HOST=0.0.0.0 \
    QWEN3_ORT_PORT=8080 \
    QWEN3_ORT_MODEL=/models/model
USER 10001:10001
WORKDIR /models
EXPOSE 8080
ENTRYPOINT ["/opt/venv/bin/python", "-m", "qwen3ops.ortserver"]
