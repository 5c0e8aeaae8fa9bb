# A model image: a server image (docker/llamacpp.Dockerfile or docker/ortserver.Dockerfile) with one
# model baked in at /opt/qwen3/model. It serves two purposes:
#  - the Helm chart's model source (model.init.method copy): its init container copies
#    /opt/qwen3/model into the pod's model volume once, so the server image stays model-free;
#  - a self-contained server (model.storage.type image, or `podman run` with no mounts).
#
#   scripts/build-images.sh --bake-model <artifact dir>    (tags <server repo>:<version>-<model>)
#
# The build context is the model's artifact directory (a GGUF artifact made by python -m
# qwen3ops.gguf, or an ONNX package made by python -m qwen3ops.onnx_export), staged by the script with
# world-readable files and, for GGUF, a model.gguf link to the artifact's file.
ARG SERVER_IMAGE
FROM ${SERVER_IMAGE}
ARG MODEL_NAME=model
LABEL org.opencontainers.image.description="qwen3-ops server with the model ${MODEL_NAME} baked in at /opt/qwen3/model" \
      io.qwen3-ops.model="${MODEL_NAME}"
# Owned by root, read-only for the server's user 10001.
COPY . /opt/qwen3/model/
ENV LLAMA_ARG_MODEL=/opt/qwen3/model/model.gguf \
    QWEN3_ORT_MODEL=/opt/qwen3/model
