#!/usr/bin/env bash
# Rootless Docker (Debian's docker.io: dockerd-rootless.sh with rootlesskit and slirp4netns) run
# by another user, on a private socket, for the rootless Docker tests. Needs root (to switch to
# the user), docker.io, rootlesskit, slirp4netns and uidmap.
#
#   rootless-docker.sh --user NAME [--watch PID] DIR [IMAGE...]
#       start (if DIR/docker.sock does not answer yet) and load each IMAGE from the system
#       engine; with --watch the engine this call starts is stopped once PID exits
#   rootless-docker.sh --stop DIR
#
# Writes DIR/docker.sock, DIR/docker.pid (rootlesskit's) and DIR/docker.log.
set -euo pipefail

stop() {
  local dir=$1
  [ -f "$dir/docker.pid" ] && kill "$(cat "$dir/docker.pid")" 2>/dev/null || true
  for _ in $(seq 40); do
    [ -f "$dir/docker.pid" ] && kill -0 "$(cat "$dir/docker.pid")" 2>/dev/null || break
    sleep 0.25
  done
  rm -f "$dir/docker.pid" "$dir/docker.sock"
}
if [ "${1:-}" = --stop ]; then stop "${2:?usage: rootless-docker.sh --stop DIR}"; exit 0; fi
[ "${1:-}" = --user ] || { echo "usage: rootless-docker.sh --user NAME [--watch PID] DIR [IMAGE...]" >&2; exit 2; }
user=$2; shift 2
watch=
if [ "${1:-}" = --watch ]; then watch=$2; shift 2; fi
dir=${1:?usage: rootless-docker.sh --user NAME [--watch PID] DIR [IMAGE...]}
shift
contrib=/usr/share/docker.io/contrib
[ -x "$contrib/dockerd-rootless.sh" ] || { echo "rootless-docker: $contrib/dockerd-rootless.sh is missing: apt-get install docker.io" >&2; exit 1; }
command -v rootlesskit >/dev/null || { echo "rootless-docker: rootlesskit is missing: apt-get install rootlesskit" >&2; exit 1; }
id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
mkdir -p "$dir/run"
chmod 700 "$dir/run"
chown -R "$user:" "$dir"
dir=$(cd "$dir" && pwd)
home=$(getent passwd "$user" | cut -d: -f6)
run_as=(setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups
  env HOME="$home" USER="$user" XDG_RUNTIME_DIR="$dir/run" PATH="$contrib:/usr/sbin:/usr/bin:/sbin:/bin")
sock="$dir/docker.sock"
answers() { DOCKER_HOST="unix://$sock" timeout 10 docker info >/dev/null 2>&1; }

exec 9>"$dir/lock"
flock 9
if ! answers; then
  rm -f "$sock"
  setsid "${run_as[@]}" dockerd-rootless.sh -H "unix://$sock" --data-root "$dir/data" \
    --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" >"$dir/docker.log" 2>&1 </dev/null 9>&- &
  echo $! >"$dir/docker.pid"
  for _ in $(seq 120); do answers && break; sleep 0.25; done
  answers || { echo "rootless-docker: the engine did not answer:" >&2; tail -n 20 "$dir/docker.log" >&2; stop "$dir"; exit 1; }
  if [ -n "$watch" ]; then
    self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
    setsid bash -c "while kill -0 $watch 2>/dev/null; do sleep 1; done; bash '$self' --stop '$dir'" \
      >/dev/null 2>&1 </dev/null 9>&- &
  fi
fi
for image in "$@"; do
  DOCKER_HOST="unix://$sock" docker image inspect "$image" >/dev/null 2>&1 && continue
  docker save "$image" | DOCKER_HOST="unix://$sock" docker load -q >/dev/null
done
echo "rootless-docker: unix://$sock"
