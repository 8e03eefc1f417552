#!/usr/bin/env bash
# After the tests: fail when a process of the engines the tests started is still running (issue
# 15 review: rootless Podman's `catatonit -P` and slirp4netns outlived the tests). Gives the
# services' watchers time to stop them (they poll each second), then lists what is left: every
# process of the rootless test account, and any process naming a test engine's folder.
#
#   engine-leftovers.sh [SECONDS]      (default 20)
set -euo pipefail
user=berth-rootless
dirs=(/tmp/berth-test-podman /tmp/berth-test-podman-rootless /tmp/berth-test-rootless-docker)
left() {
  {
    id "$user" >/dev/null 2>&1 && pgrep -u "$user" || true
    for pid in $(pgrep -f /tmp/berth-test- || true); do
      for d in "${dirs[@]}"; do
        cat "/proc/$pid/cmdline" 2>/dev/null | tr '\0' ' ' | grep -qF -- "$d/" && echo "$pid"
      done
    done
  } | grep -vx "$$" | sort -un
}
for _ in $(seq "${1:-20}"); do
  [ -z "$(left)" ] && { echo "engine-leftovers: nothing left"; exit 0; }
  sleep 1
done
pids=$(left)
echo "engine-leftovers: $(echo "$pids" | wc -l) processes still running after the tests:" >&2
for pid in $(echo "$pids" | head -n 15); do ps -o pid=,user=,args= -p "$pid" 2>/dev/null | cut -c1-160 >&2 || true; done
exit 1
