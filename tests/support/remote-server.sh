#!/usr/bin/env bash
# A "GPU server" on loopback for `berth --on` tests and bench/remote.sh: an OpenSSH server on
# 127.0.0.1 (its own host key and port, key-only) in front of this host's own Docker engine,
# logged into as ordinary users, not root:
#   berthsrv   in the docker group, with BERTH (a berth binary) on its PATH;
#   berthbare  in the docker group, with no berth anywhere (for the copy offer).
# Each key carries its own environment (authorized_keys `environment=`): the server's
# BERTH_HOST_ROOT (a recorded host tree) and PATH. Needs root and Debian's openssh-server.
#
#   remote-server.sh DIR WATCH_PID BERTH HOSTS   start; stop by pid and remove DIR once WATCH_PID exits
#   remote-server.sh --stop DIR                  stop now
#
# HOSTS is the folder of recorded host trees. Writes DIR/ssh_config with these host aliases
# (use BERTH_SSH="ssh -F DIR/ssh_config"):
#   srv      berthsrv, BERTH_HOST_ROOT=HOSTS/none        srv-amd  berthsrv, HOSTS/amd-igpu-2
#   bare     berthbare, HOSTS/none
# and DIR/port.
set -euo pipefail

stop() {
  local dir=$1
  [ -f "$dir/sshd.pid" ] && kill "$(cat "$dir/sshd.pid")" 2>/dev/null || true
  rm -rf "$dir"
}

if [ "${1:-}" = --stop ]; then stop "$2"; exit 0; fi
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
dir=${1:?usage: remote-server.sh DIR WATCH_PID BERTH HOSTS}
watch=${2:?usage}
berth=${3:?usage}
hosts=${4:?usage}
sshd=/usr/sbin/sshd
[ -x "$sshd" ] || { echo "remote-server: $sshd is missing: apt-get install openssh-server" >&2; exit 1; }
mkdir -p "$dir/bin" /run/sshd
dir=$(cd "$dir" && pwd)
# The users can reach the server's berth (DIR/bin) but nothing else in DIR.
chmod 711 "$dir"
chmod 755 "$dir/bin"
cp "$berth" "$dir/bin/berth"
chmod 755 "$dir/bin/berth"

docker_group=$(stat -c %G /var/run/docker.sock)
for user in berthsrv berthbare; do
  # Another test run may be creating the same user right now.
  id "$user" >/dev/null 2>&1 || useradd -m -s /bin/sh "$user" 2>/dev/null || id "$user" >/dev/null
  # No password, but not locked either: sshd refuses a locked account even with a key.
  usermod -aG "$docker_group" -p '*' "$user"
done

ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key" -C berth-test-host
for key in srv amd bare; do ssh-keygen -q -t ed25519 -N '' -f "$dir/id_$key" -C "berth-test-$key"; done
server_path="$dir/bin:/usr/local/bin:/usr/bin:/bin"
bare_path="/usr/local/bin:/usr/bin:/bin"
echo "environment=\"PATH=$server_path\",environment=\"BERTH_HOST_ROOT=$hosts/none\" $(cat "$dir/id_srv.pub")" >"$dir/keys_berthsrv"
echo "environment=\"PATH=$server_path\",environment=\"BERTH_HOST_ROOT=$hosts/amd-igpu-2\" $(cat "$dir/id_amd.pub")" >>"$dir/keys_berthsrv"
echo "environment=\"PATH=$bare_path\",environment=\"BERTH_HOST_ROOT=$hosts/none\" $(cat "$dir/id_bare.pub")" >"$dir/keys_berthbare"
chmod 644 "$dir"/keys_*

port=
for _ in $(seq 20); do
  try=$((20000 + RANDOM % 40000))
  cat >"$dir/sshd_config" <<EOF2
Port $try
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/keys_%u
AllowUsers berthsrv berthbare
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
PermitUserEnvironment yes
StrictModes no
UsePAM no
UseDNS no
EOF2
  if "$sshd" -f "$dir/sshd_config" -E "$dir/sshd.log"; then
    for _ in $(seq 40); do [ -s "$dir/sshd.pid" ] && break; sleep 0.05; done
    [ -s "$dir/sshd.pid" ] && { port=$try; break; }
  fi
done
[ -n "$port" ] || { echo "remote-server: sshd did not start:" >&2; tail -n 20 "$dir/sshd.log" >&2; stop "$dir"; exit 1; }
echo "$port" >"$dir/port"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
{
  for alias in srv:berthsrv:srv srv-amd:berthsrv:amd bare:berthbare:bare; do
    IFS=: read -r name user key <<<"$alias"
    cat <<EOF2
Host $name
  HostName 127.0.0.1
  HostKeyAlias [127.0.0.1]:$port
  Port $port
  User $user
  IdentityFile $dir/id_$key
EOF2
  done
  cat <<EOF2
Host *
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
EOF2
} >"$dir/ssh_config"

setsid bash -c "while kill -0 $watch 2>/dev/null; do sleep 1; done; bash '$self' --stop '$dir'" \
  >/dev/null 2>&1 </dev/null &
echo "remote-server: sshd on 127.0.0.1:$port (ssh -F $dir/ssh_config srv)"
