#!/usr/bin/env bash
# Build the container images with podman, tagged by version; a build whose inputs have not changed
# is skipped (the image carries the sha256 of its inputs as a label, io.qwen3-ops.inputs).
#
#   scripts/build-images.sh [llamacpp] [ortserver]   # server images (default: both); prints their refs
#   scripts/build-images.sh --print [llamacpp|...]   # print the refs only (exit 1 when one is missing or stale)
#   scripts/build-images.sh --bake-model DIR         # a model image: the server image + the model artifact DIR
#   scripts/build-images.sh --push REGISTRY [...]    # also push the refs to REGISTRY (e.g. registry.example.com/qwen3-ops)
#
# Images (the version is the project's, qwen3ops/__init__.py; the Helm chart's appVersion):
#   qwen3-ops/llamacpp:<version>             llama-server, portable CPU build (docker/llamacpp.Dockerfile)
#   qwen3-ops/ortserver:<version>            python -m qwen3ops.ortserver (docker/ortserver.Dockerfile)
#   qwen3-ops/<backend>:<version>-<model>    a model image (docker/model.Dockerfile), e.g.
#                                            qwen3-ops/llamacpp:0.1.0-qwen3-0.6b-q4_k_m
# Each server image is also tagged <version>-<inputs sha256, 12 characters>: an immutable name to
# deploy by. The base image must exist locally or be pullable (here: scripts/build-test-images.sh).
#
# Environment: BUILD_JOBS (compile jobs in the llama.cpp build; default: all cores), QWEN3_OPS_CA_BUNDLE
# (a CA bundle the builds trust for downloads, passed as a build secret, never stored in an image;
# default /etc/ssl/certs/ca-certificates.crt when it exists). Builds run under `nice -n 10`.
# Building llama-server takes ~7-13 min on 2 cores; the ortserver image ~3 min.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib/versions.sh
. "$here/lib/versions.sh"

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/qwen3ops/__init__.py")
[ -n "$version" ] || { echo "error: no __version__ in qwen3ops/__init__.py" >&2; exit 1; }
ca_bundle=${QWEN3_OPS_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

mode=build push_to="" bake_dir="" backends=()
while [ $# -gt 0 ]; do
  case "$1" in
    --print) mode=print ;;
    --bake-model) bake_dir=${2:?--bake-model needs an artifact directory}; shift ;;
    --push) push_to=${2:?--push needs a registry prefix}; shift ;;
    -h|--help) usage; exit 0 ;;
    llamacpp|ortserver) backends+=("$1") ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
command -v podman >/dev/null || { echo "error: podman is missing (apt-get install podman runc)" >&2; exit 1; }

# The sha256 of everything an image is made from (files, then build arguments).
inputs_hash() {  # <backend>
  case "$1" in
    llamacpp)
      { sha256 "$root/docker/llamacpp.Dockerfile"
        echo "$LLAMA_CPP_PYTHON_VERSION $LLAMA_CPP_PYTHON_SHA256"; } ;;
    ortserver)
      (cd "$root" && { printf '%s\n' docker/ortserver.Dockerfile roles/onnxruntime_server/files/requirements.txt \
                         qwen3ops/__init__.py; find qwen3ops/ortserver -type f -name '*.py'; } \
                       | LC_ALL=C sort | while read -r f; do sha256 "$f"; done) ;;
  esac | sha256 | cut -c1-64
}

label_of() {  # <ref>: its io.qwen3-ops.inputs label, empty when the image is missing
  podman image inspect --format '{{ index .Labels "io.qwen3-ops.inputs" }}' "$1" 2>/dev/null || true
}

build_args_of() {  # <backend>
  case "$1" in
    llamacpp) echo "--build-arg LLAMA_CPP_PYTHON_VERSION=$LLAMA_CPP_PYTHON_VERSION" \
                   "--build-arg LLAMA_CPP_PYTHON_SHA256=$LLAMA_CPP_PYTHON_SHA256" \
                   ${BUILD_JOBS:+"--build-arg BUILD_JOBS=$BUILD_JOBS"} ;;
    ortserver) echo "" ;;
  esac
}

secret_args=()
[ -s "$ca_bundle" ] && secret_args=(--secret "id=ca-bundle,src=$ca_bundle")

refs=()
push() { [ -z "$push_to" ] && return 0
  for ref in "$@"; do
    local remote="$push_to/${ref#*/}"
    podman tag "$ref" "$remote"
    podman push "$remote" >&2
    echo "pushed $remote" >&2
  done
}

build_server() {  # <backend>: build or reuse qwen3-ops/<backend>:<version>
  local backend=$1 hash ref pinned started
  hash=$(inputs_hash "$backend")
  ref="qwen3-ops/$backend:$version"
  pinned="qwen3-ops/$backend:$version-${hash:0:12}"
  if [ "$(label_of "$ref")" = "$hash" ]; then
    podman image exists "$pinned" || podman tag "$ref" "$pinned"
    echo "up to date: $ref ($pinned)" >&2
  elif [ "$mode" = print ]; then
    echo "error: $ref is missing or stale (inputs changed): run scripts/build-images.sh $backend" >&2
    return 1
  else
    started=$(date +%s)
    echo "building $ref from docker/$backend.Dockerfile (inputs ${hash:0:12})" >&2
    # shellcheck disable=SC2046
    nice -n 10 podman build --layers -f "$root/docker/$backend.Dockerfile" "${secret_args[@]}" \
      $(build_args_of "$backend") --build-arg "IMAGE_VERSION=$version" \
      --label "io.qwen3-ops.inputs=$hash" -t "$ref" -t "$pinned" "$root" >&2
    echo "built $ref in $(( $(date +%s) - started )) s" >&2
    # Earlier builds' immutable tags of this version now name stale images: drop the tags (the
    # images go with `podman image prune`).
    podman images --format '{{.Repository}}:{{.Tag}}' "qwen3-ops/$backend" \
      | grep -E ":$version-[0-9a-f]{12}\$" | grep -v ":${pinned#*:}\$" | sed 's|^localhost/||' \
      | while read -r old; do podman untag "$old" "$old" 2>/dev/null || podman rmi "$old" >/dev/null 2>&1 || true; done
  fi
  refs+=("$ref")
  push "$ref" "$pinned"
}

bake_model() {  # <artifact dir>: build or reuse qwen3-ops/<backend>:<version>-<model>
  local dir backend name server hash ref stage
  dir=$(cd "$1" && pwd)
  [ -f "$dir/manifest.json" ] || { echo "error: $dir has no manifest.json (not an artifact of the store)" >&2; exit 1; }
  # The backend and the model's name from the artifact's manifest: <profile>-<quant|precision>[-synthetic].
  read -r backend name < <(python3 - "$dir/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
kind = m.get("kind")
backend = {"gguf": "llamacpp", "onnx": "ortserver"}.get(kind)
if backend is None:
    sys.exit(f"error: {sys.argv[1]}: kind {kind!r} is neither gguf nor onnx")
variant = m.get("quant") if kind == "gguf" else m.get("precision")
print(backend, f"{m['profile']}-{variant}" + ("-synthetic" if m.get("synthetic") else ""))
PY
)
  server="qwen3-ops/$backend:$version"
  if [ "$mode" != print ]; then build_server "$backend"; else refs+=("$server"); fi
  podman image exists "$server" || { echo "error: $server is missing: run scripts/build-images.sh $backend" >&2; exit 1; }
  hash=$( { podman image inspect --format '{{.Id}}' "$server"; sha256 "$root/docker/model.Dockerfile"; \
            (cd "$dir" && for f in *; do printf '%s %s\n' "$f" "$(wc -c < "$f")"; done | sha256); sha256 "$dir/manifest.json"; } | sha256 | cut -c1-64)
  ref="qwen3-ops/$backend:$version-$name"
  if [ "$(label_of "$ref")" = "$hash" ]; then
    echo "up to date: $ref" >&2
  elif [ "$mode" = print ]; then
    echo "error: $ref is missing or stale: run scripts/build-images.sh --bake-model $dir" >&2
    return 1
  else
    # Stage the artifact as the build context: world-readable files (hard links when possible) and,
    # for a GGUF, model.gguf linking to the artifact's file.
    mkdir -p "${QWEN3_OPS_CACHE:-$HOME/.cache/qwen3-ops}/tmp"
    stage=$(mktemp -d "${QWEN3_OPS_CACHE:-$HOME/.cache/qwen3-ops}/tmp/bake-XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    cp -al "$dir/." "$stage/" 2>/dev/null || cp -a "$dir/." "$stage/"
    chmod -R a+rX "$stage"
    if [ "$backend" = llamacpp ] && [ ! -e "$stage/model.gguf" ]; then
      local gguf
      gguf=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["gguf_file"])' "$dir/manifest.json")
      ln -s "$gguf" "$stage/model.gguf"
    fi
    echo "building $ref (the model $name on $server)" >&2
    nice -n 10 podman build --layers -f "$root/docker/model.Dockerfile" --build-arg "SERVER_IMAGE=$server" \
      --build-arg "MODEL_NAME=$name" --label "io.qwen3-ops.inputs=$hash" -t "$ref" "$stage" >&2
    rm -rf "$stage"
    trap - EXIT
  fi
  refs+=("$ref")
  push "$ref"
}

if [ -n "$bake_dir" ]; then
  bake_model "$bake_dir"
else
  [ ${#backends[@]} -gt 0 ] || backends=(llamacpp ortserver)
  for backend in "${backends[@]}"; do build_server "$backend"; done
fi
printf '%s\n' "${refs[@]}" | awk '!seen[$0]++'
