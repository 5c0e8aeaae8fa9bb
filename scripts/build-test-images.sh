#!/usr/bin/env bash
# Build the local container images the tests need, once (no registry can be reached here):
#   qwen3-ops/debian-systemd:bookworm, :trixie   Debian with systemd as PID 1 (molecule platforms)
#   debian:bookworm-slim                         the base image name our Dockerfiles start FROM
# Also installs podman, runc and debootstrap when missing (Debian/Ubuntu hosts, as root), and sets
# podman up for these machines (runc, lower ulimits: see ../shared/FACTS.md).
#
#   scripts/build-test-images.sh [bookworm] [trixie]     # default: both
#
# Images are kept in podman's storage; a second run only checks they exist. The debootstrap
# trees are cached in $QWEN3_OPS_CACHE/rootfs/<suite>.tar (delete it to rebuild from scratch).
set -euo pipefail

cache=${QWEN3_OPS_CACHE:-$HOME/.cache/qwen3-ops}
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "error: ${need[*]} missing; install them (Debian: apt-get install podman runc debootstrap)" >&2
    exit 1
  fi
  echo "installing ${need[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

conf=/etc/containers/containers.conf.d/qwen3-ops.conf
if [ "$(id -u)" = 0 ] && [ ! -f "$conf" ]; then
  mkdir -p "$(dirname "$conf")"
  cat > "$conf" <<'CONF'
# qwen3-ops: crun cannot set RLIMIT_NOFILE on these machines; runc with lower limits works.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
fi

rootfs() {  # <suite> <variant> <include> -> path of a cached tarball of the debootstrapped tree
  local suite=$1 variant=$2 include=$3 tar="$cache/rootfs/$1-$2.tar"
  if [ ! -f "$tar" ]; then
    mkdir -p "$cache/rootfs"
    local dir
    dir=$(mktemp -d "$cache/rootfs/.$suite-XXXXXX")
    echo "debootstrap $suite ($variant) (~1.5 min)" >&2
    debootstrap --variant=minbase ${include:+--include="$include"} "$suite" "$dir" "$mirror" >/dev/null
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -cf "$tar.partial" .
    rm -rf "$dir"
    mv "$tar.partial" "$tar"
  fi
  echo "$tar"
}

for suite in "${suites[@]}"; do
  image="qwen3-ops/debian-systemd:$suite"
  if ! podman image exists "$image"; then
    tar=$(rootfs "$suite" systemd python3,systemd,systemd-sysv,dbus,sudo,procps,ca-certificates)
    podman import -c 'CMD ["/lib/systemd/systemd"]' -c 'STOPSIGNAL SIGRTMIN+3' -c 'ENV container=podman' \
      "$tar" "$image" >/dev/null
    echo "built $image" >&2
  fi
done
if ! podman image exists docker.io/library/debian:bookworm-slim; then
  tar=$(rootfs bookworm slim ca-certificates)
  podman import -c 'CMD ["bash"]' "$tar" docker.io/library/debian:bookworm-slim >/dev/null
  echo "built debian:bookworm-slim (local stand-in with the base image's name)" >&2
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'debian' >&2
