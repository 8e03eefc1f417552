#!/usr/bin/env bash
# Rootful Podman's Docker-compatible API on a private unix socket, for the Podman tests. It never
# touches /var/run/docker.sock (the Docker engine the other tests use) nor Podman's own
# /run/podman/podman.sock. Needs root and Debian's podman, catatonit and runc.
#
#   podman-service.sh [--user NAME] [--watch PID] DIR [IMAGE...]
#       start (if DIR/podman.sock does not answer yet), then load each IMAGE from the Docker
#       engine into Podman's store. With --user: rootless Podman run by NAME (made with
#       `useradd`, which gives it /etc/subuid and /etc/subgid ranges, if it does not exist).
#       With --watch: PID joins the service's users (DIR/users); once none of them is alive, a
#       watcher stops the service as --stop does. Test processes of several checkouts may share
#       one service: it stops after the last.
#   podman-service.sh --stop DIR       stop the service and everything it left (see stop)
#
# Writes DIR/podman.sock, DIR/podman.pid, DIR/podman.log, DIR/users, DIR/watcher.pid and, for
# rootless Podman, DIR/user. Idempotent and safe to run from parallel tests: a lock on DIR/lock serialises
# starts, loads and stops.
#
# The service runs runc, not Debian's default crun: crun 1.8 refuses hosts with hybrid cgroups
# ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2").
set -euo pipefail

self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

# The rootless user's environment for Podman, with DIR/run as its runtime folder.
run_as_user() {
  local user=$1 dir=$2
  local home
  home=$(getent passwd "$user" | cut -d: -f6)
  run_as=(setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups
    env HOME="$home" USER="$user" XDG_RUNTIME_DIR="$dir/run")
}

# Stop the service and, for rootless Podman, what outlives it. Each exec session leaves a conmon
# that waits 300 s (containers.conf's exit_command_delay) and then runs `podman container
# cleanup` as the user, which starts a new pause process (`catatonit -P`) long after the tests;
# the rootless network namespace keeps its slirp4netns; the pause process holds the user
# namespace. All are ended by process id: the conmons and slirp4netns name DIR/run on their
# command line, the pause process is in DIR/run/libpod/tmp/pause.pid. Rootful Podman leaves only
# exec conmons, which end by themselves after 300 s; its store is shared by every rootful Podman
# on the host, so they are left alone.
stop() {
  local dir=$1
  if [ -f "$dir/podman.pid" ]; then
    # Its process group: rootless Podman re-executes itself inside a user namespace, and that
    # child outlives a signal to the parent alone (setsid made the parent the group's leader).
    kill -- "-$(cat "$dir/podman.pid")" 2>/dev/null || true
  fi
  rm -f "$dir/podman.pid" "$dir/podman.sock"
  [ -f "$dir/user" ] || return 0
  local user pid
  user=$(cat "$dir/user")
  run_as_user "$user" "$dir"
  # Containers a failed test left (the store is this test account's alone).
  "${run_as[@]}" podman rm --all --force --time 0 >/dev/null 2>&1 || true
  for pid in $(pgrep -u "$user" || true); do
    if cat "/proc/$pid/cmdline" 2>/dev/null | tr '\0' ' ' | grep -qF -- "$dir/run/"; then
      kill "$pid" 2>/dev/null || true
    fi
  done
  if [ -f "$dir/run/libpod/tmp/pause.pid" ]; then
    pid=$(cat "$dir/run/libpod/tmp/pause.pid")
    # Only while it is still the user's pause process (pids are reused).
    if [ "$(stat -c %U "/proc/$pid" 2>/dev/null)" = "$user" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = catatonit ]; then
      kill "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/run/libpod/tmp/pause.pid"
  fi
}

if [ "${1:-}" = --stop ]; then
  dir=${2:?usage: podman-service.sh --stop DIR}
  exec 9>"$dir/lock"
  flock 9
  stop "$dir"
  exit 0
fi
if [ "${1:-}" = --watcher ]; then
  # Internal: wait until no process in DIR/users is alive, then stop (holding the lock, so a
  # test that registers meanwhile either comes first and keeps it running or starts it again).
  dir=$2
  while sleep 1; do
    exec 9>"$dir/lock"
    flock 9
    alive=
    for pid in $(cat "$dir/users" 2>/dev/null); do kill -0 "$pid" 2>/dev/null && alive=1; done
    if [ -z "$alive" ]; then
      stop "$dir"
      rm -f "$dir/users" "$dir/watcher.pid"
      exit 0
    fi
    exec 9>&-
  done
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
  run_as_user "$user" "$dir"
fi
sock="$dir/podman.sock"
answers() { curl -sf --max-time 5 --unix-socket "$sock" http://podman/_ping >/dev/null 2>&1; }

exec 9>"$dir/lock"
flock 9
[ -z "$watch" ] || echo "$watch" >>"$dir/users"
if ! answers; then
  rm -f "$sock"
  if [ -n "$user" ]; then
    echo "$user" >"$dir/user"
    # A rootless user's pause process (it holds the user namespace) left by a service that ran
    # with another runtime folder makes every start fail ("failed to mount runtime directory
    # for rootless netns"): `system migrate` ends it.
    "${run_as[@]}" podman system migrate >/dev/null 2>&1 || true
  else
    rm -f "$dir/user"
  fi
  runtime=()
  command -v runc >/dev/null && runtime=(--runtime "$(command -v runc)")
  # setsid: the service outlives the test process that started it; stop it with --stop.
  # 9>&-: the service must not hold the lock after this script ends.
  setsid "${run_as[@]}" podman "${runtime[@]}" system service --time=0 "unix://$sock" >"$dir/podman.log" 2>&1 </dev/null 9>&- &
  echo $! >"$dir/podman.pid"
  for _ in $(seq 120); do answers && break; sleep 0.25; done
  answers || { echo "podman-service: the service did not answer:" >&2; tail -n 20 "$dir/podman.log" >&2; exit 1; }
fi
# One watcher per service (a service started without --watch has none until a user comes).
if [ -n "$watch" ] && ! { [ -f "$dir/watcher.pid" ] && kill -0 "$(cat "$dir/watcher.pid")" 2>/dev/null; }; then
  setsid bash "$self" --watcher "$dir" >/dev/null 2>&1 </dev/null 9>&- &
  echo $! >"$dir/watcher.pid"
fi
for image in "$@"; do
  # Podman's store is its own: copy the offline test images from the Docker engine.
  "${run_as[@]}" podman image exists "$image" 2>/dev/null && continue
  docker save "$image" | "${run_as[@]}" podman load -q >/dev/null
done
echo "podman-service: unix://$sock"
