#!/usr/bin/env bash
# Rootful Podman's Docker-compatible API on a private unix socket, for the Podman tests. It never
# touches /var/run/docker.sock (the Docker engine the other tests use) nor Podman's own
# /run/podman/podman.sock. Needs root and Debian's podman, catatonit and runc.
#
#   podman-service.sh [--user NAME] [--watch PID] DIR [IMAGE...]
#       start (if DIR/podman.sock does not answer yet), then load each IMAGE from the Docker
#       engine into Podman's store. With --user: rootless Podman run by NAME (made with
#       `useradd`, which gives it /etc/subuid and /etc/subgid ranges, if it does not exist).
#       With --watch: a service this call starts is stopped by its pid once PID exits.
#   podman-service.sh --stop DIR       stop the service by its pid file
#
# Writes DIR/podman.sock, DIR/podman.pid and DIR/podman.log. Idempotent and safe to run from
# parallel tests: a lock on DIR/lock serialises starts and loads.
#
# The service runs runc, not Debian's default crun: crun 1.8 refuses hosts with hybrid cgroups
# ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2").
set -euo pipefail

if [ "${1:-}" = --stop ]; then
  dir=${2:?usage: podman-service.sh --stop DIR}
  # Its process group: rootless Podman re-executes itself inside a user namespace, and that
  # child outlives a signal to the parent alone (setsid made the parent the group's leader).
  [ -f "$dir/podman.pid" ] && kill -- "-$(cat "$dir/podman.pid")" 2>/dev/null || true
  rm -f "$dir/podman.pid" "$dir/podman.sock"
  exit 0
fi
user=
if [ "${1:-}" = --user ]; then user=${2:?usage: podman-service.sh --user NAME DIR [IMAGE...]}; shift 2; fi
watch=
if [ "${1:-}" = --watch ]; then watch=${2:?usage: podman-service.sh --watch PID DIR [IMAGE...]}; shift 2; fi
dir=${1:?usage: podman-service.sh [--user NAME] [--watch PID] DIR [IMAGE...]}
shift
command -v podman >/dev/null || { echo "podman-service: podman is missing: apt-get install podman catatonit" >&2; exit 1; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
run_as=()
if [ -n "$user" ]; then
  id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
  grep -q "^$user:" /etc/subuid || { echo "podman-service: $user has no /etc/subuid range" >&2; exit 1; }
  mkdir -p "$dir/run"
  chmod 700 "$dir/run"
  chown -R "$user:" "$dir"
  home=$(getent passwd "$user" | cut -d: -f6)
  run_as=(setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups
    env HOME="$home" USER="$user" XDG_RUNTIME_DIR="$dir/run")
fi
sock="$dir/podman.sock"
answers() { curl -sf --max-time 5 --unix-socket "$sock" http://podman/_ping >/dev/null 2>&1; }

exec 9>"$dir/lock"
flock 9
if ! answers; then
  rm -f "$sock"
  # A rootless user's pause process (it holds the user namespace) left by a service that ran
  # with another runtime folder makes every start fail ("failed to mount runtime directory for
  # rootless netns"): `system migrate` ends it.
  [ -z "$user" ] || "${run_as[@]}" podman system migrate >/dev/null 2>&1 || true
  runtime=()
  command -v runc >/dev/null && runtime=(--runtime "$(command -v runc)")
  # setsid: the service outlives the test process that started it; stop it with --stop.
  # 9>&-: the service must not hold the lock after this script ends.
  setsid "${run_as[@]}" podman "${runtime[@]}" system service --time=0 "unix://$sock" >"$dir/podman.log" 2>&1 </dev/null 9>&- &
  echo $! >"$dir/podman.pid"
  for _ in $(seq 120); do answers && break; sleep 0.25; done
  answers || { echo "podman-service: the service did not answer:" >&2; tail -n 20 "$dir/podman.log" >&2; exit 1; }
  if [ -n "$watch" ]; then
    self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
    setsid bash -c "while kill -0 $watch 2>/dev/null; do sleep 1; done; bash '$self' --stop '$dir'" \
      >/dev/null 2>&1 </dev/null 9>&- &
  fi
fi
for image in "$@"; do
  # Podman's store is its own: copy the offline test images from the Docker engine.
  "${run_as[@]}" podman image exists "$image" 2>/dev/null && continue
  docker save "$image" | "${run_as[@]}" podman load -q >/dev/null
done
echo "podman-service: unix://$sock"
