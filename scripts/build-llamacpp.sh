#!/usr/bin/env bash
# Build llama.cpp's tools (llama-server, llama-quantize, llama-bench) from the source vendored in the
# pinned llama-cpp-python sdist, once per (version, flags, CPU family), into a cache outside the clone.
#
#   scripts/build-llamacpp.sh            # build if missing, print the bin directory
#   scripts/build-llamacpp.sh --print    # print the bin directory only (exit 1 when not built)
#
# Environment: QWEN3_OPS_CACHE (default ~/.cache/qwen3-ops), LLAMACPP_JOBS (default: nproc).
# The result is a versioned, checksummed artifact: <cache>/llamacpp/<key>/{bin/,SHA256SUMS,build.json}.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib/versions.sh
. "$here/lib/versions.sh"

cache=${QWEN3_OPS_CACHE:-$HOME/.cache/qwen3-ops}
flags="-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF"
targets="llama-server llama-quantize llama-bench llama-cli"
# GGML_NATIVE=ON binaries are specific to the CPU: key the cache by its model name and ISA flags.
cpu_id=$( (uname -m; grep -m1 -E '^(model name|flags)' /proc/cpuinfo 2>/dev/null; grep -m1 '^flags' /proc/cpuinfo 2>/dev/null; sysctl -n machdep.cpu.brand_string 2>/dev/null || true) | sha256 | cut -c1-12)
key="llama-cpp-python-${LLAMA_CPP_PYTHON_VERSION}-$(printf '%s %s' "$flags" "$targets" | sha256 | cut -c1-8)-cpu${cpu_id}"
dest="$cache/llamacpp/$key"

built() { [ -f "$dest/SHA256SUMS" ] && (cd "$dest" && sha256 --quiet -c SHA256SUMS); }
if built; then
  echo "$dest/bin"
  exit 0
fi
if [ "${1:-}" = "--print" ]; then
  echo "llama.cpp is not built for this CPU yet: run scripts/build-llamacpp.sh" >&2
  exit 1
fi
# One build at a time: a second caller waits for the first and then reuses its result.
mkdir -p "$cache/llamacpp"
exec 9>"$cache/llamacpp/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if built; then
  echo "$dest/bin"
  exit 0
fi

sdist=$("$here/fetch-llamacpp-source.sh")
work=$(mktemp -d "$cache/llamacpp/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "building llama.cpp ($key) in $work; ~7 min on 2 idle cores" >&2
tar -xzf "$sdist" -C "$work"
src="$work/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp"
# shellcheck disable=SC2086
cmake -S "$src" -B "$work/build" -G Ninja $flags >&2
# shellcheck disable=SC2086
cmake --build "$work/build" -j "${LLAMACPP_JOBS:-$(nproc)}" --target $targets >&2
mkdir -p "$work/out/bin"
for t in $targets; do install -m 0755 "$work/build/bin/$t" "$work/out/bin/$t"; done
(cd "$work/out" && sha256 bin/* > SHA256SUMS)
printf '{"llama_cpp_python": "%s", "flags": "%s", "targets": "%s", "cpu": "%s", "built": "%s"}\n' \
  "$LLAMA_CPP_PYTHON_VERSION" "$flags" "$targets" "$cpu_id" "$(date -u +%FT%TZ)" > "$work/out/build.json"
rm -rf "$dest"
mv "$work/out" "$dest"   # atomic publish: a half-built tree is never at $dest
echo "$dest/bin"
