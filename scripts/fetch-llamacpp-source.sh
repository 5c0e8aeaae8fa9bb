#!/usr/bin/env bash
# Fetch the pinned llama-cpp-python sdist from PyPI (it vendors llama.cpp, its GGUF tools, the
# Qwen2/Qwen3 vocabulary with test vectors and the Qwen3 chat template), verify its sha256 and
# print its path. Cached in $QWEN3_OPS_CACHE/downloads; a second run does not touch the network.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib/versions.sh
. "$here/lib/versions.sh"
cache=${QWEN3_OPS_CACHE:-$HOME/.cache/qwen3-ops}
dir="$cache/downloads"
file="$dir/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}.tar.gz"
mkdir -p "$dir"
verify() { echo "$LLAMA_CPP_PYTHON_SHA256  $1" | sha256 --quiet -c - 2>/dev/null; }
if [ -f "$file" ] && verify "$file"; then echo "$file"; exit 0; fi
tmp=$(mktemp -d "$dir/.fetch-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "downloading llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION} sdist (76.6 MB) from PyPI" >&2
python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" -d "$tmp" >&2
if ! verify "$tmp/$(basename "$file")"; then
  echo "error: sha256 of the downloaded sdist does not match the pin in scripts/lib/versions.sh" >&2
  exit 1
fi
mv "$tmp/$(basename "$file")" "$file"
echo "$file"
