#!/usr/bin/env bash
# Create the controller virtualenv with every pinned dependency (requirements.txt), idempotently.
#
#   scripts/bootstrap.sh          # install if needed; prints the venv path; a second run is a no-op
#
# The venv lives outside the clone, keyed by the hash of requirements.txt and the Python version
# ($QWEN3_OPS_CACHE/venvs/<key>, default cache ~/.cache/qwen3-ops), so fresh clones of the same
# revision reuse it; `.venv` in the clone is a symlink to it. torch is installed first, pinned to
# the CPU build: an unpinned torch pulled in by another package would fetch a multi-GB CUDA build.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/versions.sh
. "$root/scripts/lib/versions.sh"
cache=${QWEN3_OPS_CACHE:-$HOME/.cache/qwen3-ops}
python=${QWEN3_OPS_PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: the controller needs Python 3.10 or newer ($python is $("$python" -V 2>&1)); set QWEN3_OPS_PYTHON" >&2
  exit 1
fi
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$( (cat "$root/requirements.txt"; echo "$pyver") | sha256 | cut -c1-16)
venv="$cache/venvs/py$pyver-$key"

if [ -f "$venv/.complete" ]; then
  ln -sfn "$venv" "$root/.venv"
  echo "$venv"
  exit 0
fi

mkdir -p "$cache/venvs"
tmp="$venv.partial"
rm -rf "$tmp"
echo "creating the controller virtualenv in $venv (first run: a few minutes)" >&2
"$python" -m venv "$tmp"
pip=("$tmp/bin/python" -m pip --disable-pip-version-check)
torch_pin=$(grep -E '^torch==' "$root/requirements.txt")
# The CPU build of torch (a "+cpu" local version, which PyPI never serves): from the wheels pip is
# configured to find locally, otherwise from PyTorch's CPU index.
if ! "${pip[@]}" install --quiet "$torch_pin" 2>/dev/null; then
  "${pip[@]}" install --quiet "$torch_pin" --extra-index-url https://download.pytorch.org/whl/cpu >&2
fi
"${pip[@]}" install --quiet -r "$root/requirements.txt" >&2
"${pip[@]}" check >&2
# The venv was built under another name: rewrite the absolute paths in its scripts, then publish
# it in one rename so an interrupted bootstrap never leaves a half-installed venv in use.
"$tmp/bin/python" - "$tmp" "$venv" <<'PY'
import pathlib, sys
old, new = sys.argv[1], sys.argv[2]
for path in pathlib.Path(old, "bin").iterdir():
    if path.is_file() and not path.is_symlink():
        data = path.read_bytes()
        if old.encode() in data:
            path.write_bytes(data.replace(old.encode(), new.encode()))
PY
touch "$tmp/.complete"
rm -rf "$venv"
mv "$tmp" "$venv"
ln -sfn "$venv" "$root/.venv"
echo "$venv"
