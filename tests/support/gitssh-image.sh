#!/usr/bin/env bash
# Builds the offline test image `berth-test/gitssh:1`: a minimal Debian 12 root file system with
# the OpenSSH client (ssh, ssh-add) and git, for the ssh-agent forwarding tests (debootstrap
# from Debian's mirror, then `docker import`). Cached by tag: does nothing when it exists.
# About a minute the first time.
set -euo pipefail
tag="${1:-berth-test/gitssh:1}"
if docker image inspect "$tag" >/dev/null 2>&1; then exit 0; fi
command -v debootstrap >/dev/null || { echo "gitssh-image: install debootstrap first" >&2; exit 1; }
mirror="${BERTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# Concurrent builders (parallel tests) each make their own root; the import of either wins.
debootstrap --variant=minbase --include=openssh-client,git bookworm "$root" "$mirror" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "gitssh-image: built $tag"
