# Pinned versions of external sources, shared by the scripts (sourced, not executed).
# shellcheck shell=bash
# shellcheck disable=SC2034
LLAMA_CPP_PYTHON_VERSION=0.3.36
LLAMA_CPP_PYTHON_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e

# sha256 of stdin or a file, on Linux (sha256sum) and macOS (shasum).
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$@"; else shasum -a 256 "$@"; fi
}
