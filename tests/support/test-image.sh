#!/usr/bin/env bash
# Builds the offline test image `berth-test/busybox:1` (no registry needed): a root file system
# made of Debian's static busybox, its applets, and a minimal /etc, brought in with `docker import`.
# Idempotent: does nothing when the tag exists. Needs /bin/busybox from `busybox-static`.
set -euo pipefail
tag="${1:-berth-test/busybox:1}"
if docker image inspect "$tag" >/dev/null 2>&1; then exit 0; fi
bb=/bin/busybox
if ! "$bb" --list >/dev/null 2>&1; then
  echo "test-image: $bb is missing or not busybox; install it: apt-get install busybox-static" >&2
  exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,tmp,var/tmp,workspace}
chmod 1777 "$root/tmp" "$root/var/tmp"
cp "$bb" "$root/bin/busybox"
for applet in $("$bb" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/sh"]' - "$tag" >/dev/null
echo "test-image: built $tag"
