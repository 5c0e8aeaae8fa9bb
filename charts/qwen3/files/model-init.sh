#!/bin/sh
# Put the model into the model volume once (the chart's init container). Idempotent: when
# $MODEL_DIR/.complete already names what this pod wants, it changes nothing and exits at once, so
# upgrades and restarts never fetch the model again. Concurrent pods on a shared volume take turns
# (a lock directory); a fill is written beside the target and moved into place only when complete.
#
# Environment (set by the chart): METHOD (copy, download, command, none), BACKEND (llamacpp,
# ortserver), MODELS (the volume's mount point), MODEL_DIR_NAME, MODEL_FILE, MODEL_SHA256 (may be
# empty), COPY_PATH, DOWNLOAD_URL. For METHOD=command the command to run follows as arguments: it
# must leave the model in $MODEL_DIR.
set -eu

dest="$MODELS/$MODEL_DIR_NAME"
marker="$dest/.complete"
lock="$MODELS/.$MODEL_DIR_NAME.lock"
log() { echo "model-init: $*"; }
fail() { echo "model-init: error: $*" >&2; exit 1; }

# What this pod wants, as one line: the marker's content once it is in place.
case "$METHOD" in
  copy)
    [ -d "$COPY_PATH" ] || fail "the model image has no $COPY_PATH (build it with scripts/build-images.sh --bake-model)"
    if [ -f "$COPY_PATH/manifest.json" ]; then
      want="copy manifest-sha256=$(sha256sum "$COPY_PATH/manifest.json" | cut -d' ' -f1)"
    else
      want="copy listing-sha256=$(cd "$COPY_PATH" && ls -lR . | sha256sum | cut -d' ' -f1)"
    fi ;;
  download)
    [ -n "$DOWNLOAD_URL" ] || fail "model.init.download.url is empty"
    want="download $DOWNLOAD_URL sha256=${MODEL_SHA256:-unchecked}" ;;
  command)
    [ "$#" -gt 0 ] || fail "model.init.command.command is empty"
    want="command $(printf '%s\n' "$@" | sha256sum | cut -d' ' -f1)" ;;
  none)
    want="" ;;
  *) fail "unknown method $METHOD" ;;
esac

target() {  # the file (llamacpp) or directory (ortserver) the server loads, under $1
  if [ "$BACKEND" = llamacpp ]; then echo "$1/$MODEL_FILE"; else echo "$1"; fi
}

check() {  # <dir>: the files the server needs are there (and match MODEL_SHA256 when set)
  if [ "$BACKEND" = llamacpp ]; then
    [ -f "$1/$MODEL_FILE" ] || { echo "no $1/$MODEL_FILE"; return 1; }
    sum_of="$1/$MODEL_FILE"
  else
    [ -f "$1/genai_config.json" ] || { echo "no $1/genai_config.json (not an ONNX model package)"; return 1; }
    sum_of="$1/manifest.json"
  fi
  if [ -n "${MODEL_SHA256:-}" ]; then
    got=$(sha256sum "$sum_of" | cut -d' ' -f1)
    [ "$got" = "$MODEL_SHA256" ] || { echo "sha256 of $sum_of is $got, expected $MODEL_SHA256"; return 1; }
  fi
  return 0
}

current() { [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; }

if [ "$METHOD" = none ]; then
  problem=$(check "$dest") || fail "$problem: fill the volume first (or use model.init.method copy/download/command)"
  log "$(target "$dest") is in place"
  exit 0
fi
if current; then
  log "$(target "$dest") is already in place ($want): nothing to do"
  exit 0
fi

# Take the lock; wait for another pod that is filling the same directory. A lock older than
# 60 minutes is left over from a pod that died mid-fill: break it.
waited=0
until mkdir "$lock" 2>/dev/null; do
  if current; then log "another pod installed $(target "$dest")"; exit 0; fi
  if [ -n "$(find "$lock" -maxdepth 0 -mmin +60 2>/dev/null)" ]; then
    log "breaking a stale lock $lock"; rm -rf "$lock"; continue
  fi
  [ $((waited % 60)) -eq 0 ] && log "waiting for another pod to finish filling $dest ($waited s)"
  sleep 5; waited=$((waited + 5))
done
trap 'rm -rf "$lock"' EXIT
if current; then log "another pod installed $(target "$dest")"; exit 0; fi

partial="$MODELS/.$MODEL_DIR_NAME.partial"
rm -rf "$partial"
mkdir -p "$partial"
log "filling $dest by $METHOD"
case "$METHOD" in
  copy)
    cp -R "$COPY_PATH/." "$partial/" ;;
  download)
    if [ "$BACKEND" = llamacpp ]; then
      curl -fL --retry 3 --retry-delay 5 -o "$partial/$MODEL_FILE" "$DOWNLOAD_URL"
    else
      curl -fL --retry 3 --retry-delay 5 "$DOWNLOAD_URL" | tar -xzf - -C "$partial"
      # A tarball of one top-level directory: take its content.
      set -- "$partial"/*
      if [ "$#" -eq 1 ] && [ -d "$1" ] && [ ! -f "$partial/genai_config.json" ]; then
        mv "$1" "$partial.inner" && rmdir "$partial" && mv "$partial.inner" "$partial"
      fi
    fi ;;
  command)
    MODEL_DIR="$partial" "$@" ;;
esac
# An artifact holding one GGUF under another name: link it as $MODEL_FILE.
if [ "$BACKEND" = llamacpp ] && [ ! -e "$partial/$MODEL_FILE" ]; then
  set -- "$partial"/*.gguf
  [ "$#" -eq 1 ] && [ -f "$1" ] || fail "expected one .gguf file in the model, found: $(ls "$partial")"
  ln -s "$(basename "$1")" "$partial/$MODEL_FILE"
fi
problem=$(check "$partial") || fail "$problem"
printf '%s\n' "$want" > "$partial/.complete"
rm -rf "$dest"
mv "$partial" "$dest"
log "installed $(target "$dest") ($(du -sh "$dest" | cut -f1))"
