#!/usr/bin/env bash
# A "remote server" on loopback for `berth ship` tests and the transport benchmark: a second
# Docker engine (its own data root, exec root and socket) behind an OpenSSH server on
# 127.0.0.1 (its own host key, key-only root login, DOCKER_HOST set to that engine for every
# session). Needs root, dockerd and Debian's openssh-server.
#
#   remote-engine.sh DIR WATCH_PID   start; stop both by pid and remove DIR once WATCH_PID exits
#   remote-engine.sh --stop DIR      stop now
#
# Writes DIR/ssh_config (use BERTH_SSH="ssh -F DIR/ssh_config" and ssh://root@127.0.0.1:PORT),
# DIR/port and DIR/docker.sock (the engine, for checks from this host).
set -euo pipefail
command -v unshare >/dev/null || { echo "remote-engine: unshare is missing: apt-get install util-linux" >&2; exit 1; }

stop() {
  local dir=$1
  for pidfile in "$dir/sshd.pid" "$dir/docker.pid"; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  # dockerd takes a few seconds to stop its containerd; its files must be released first.
  for _ in $(seq 60); do
    [ -f "$dir/docker.pid" ] && kill -0 "$(cat "$dir/docker.pid")" 2>/dev/null || break
    sleep 0.5
  done
  rm -rf "$dir"
}

if [ "${1:-}" = --stop ]; then stop "$2"; exit 0; fi
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
dir=${1:?usage: remote-engine.sh DIR WATCH_PID}
watch=${2:?usage: remote-engine.sh DIR WATCH_PID}
sshd=/usr/sbin/sshd
[ -x "$sshd" ] || { echo "remote-engine: $sshd is missing: apt-get install openssh-server" >&2; exit 1; }
command -v dockerd >/dev/null || { echo "remote-engine: dockerd is missing" >&2; exit 1; }
mkdir -p "$dir/root" "$dir/exec" /run/sshd
dir=$(cd "$dir" && pwd)

# The engine. An empty config file keeps the host's daemon.json (data-root, ...) out of it.
# It runs in a network namespace of its own: `--bridge none` makes dockerd delete any interface
# named docker0 it can see, which on the host would cut the host engine's containers off
# (moby daemon_unix.go, removeDefaultBridgeInterface). It only loads images; it needs no network.
echo '{}' >"$dir/daemon.json"
unshare --net -- dockerd --config-file "$dir/daemon.json" --data-root "$dir/root" --exec-root "$dir/exec" \
  --pidfile "$dir/docker.pid" -H "unix://$dir/docker.sock" --bridge none --iptables=false \
  --ip-masq=false >"$dir/dockerd.log" 2>&1 </dev/null &
ready=
for _ in $(seq 120); do
  if DOCKER_HOST="unix://$dir/docker.sock" docker info >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.25
done
[ -n "$ready" ] || { echo "remote-engine: dockerd did not start:" >&2; tail -n 20 "$dir/dockerd.log" >&2; stop "$dir"; exit 1; }

# The SSH server, on the first free port it can bind.
ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key" -C berth-test-host
ssh-keygen -q -t ed25519 -N '' -f "$dir/id" -C berth-test-client
cp "$dir/id.pub" "$dir/authorized_keys"
port=
for _ in $(seq 20); do
  try=$((20000 + RANDOM % 40000))
  cat >"$dir/sshd_config" <<EOF
Port $try
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
UseDNS no
SetEnv DOCKER_HOST=unix://$dir/docker.sock
EOF
  if "$sshd" -f "$dir/sshd_config" -E "$dir/sshd.log"; then
    for _ in $(seq 40); do [ -s "$dir/sshd.pid" ] && break; sleep 0.05; done
    [ -s "$dir/sshd.pid" ] && { port=$try; break; }
  fi
done
[ -n "$port" ] || { echo "remote-engine: sshd did not start:" >&2; tail -n 20 "$dir/sshd.log" >&2; stop "$dir"; exit 1; }
echo "$port" >"$dir/port"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
cat >"$dir/ssh_config" <<EOF
Host 127.0.0.1
  User root
  IdentityFile $dir/id
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
EOF

# The watchdog: whatever happens to the caller, both servers stop and DIR goes.
setsid bash -c "while kill -0 $watch 2>/dev/null; do sleep 1; done; bash '$self' --stop '$dir'" \
  >/dev/null 2>&1 </dev/null &
echo "remote-engine: dockerd and sshd on 127.0.0.1:$port (ssh -F $dir/ssh_config)"
