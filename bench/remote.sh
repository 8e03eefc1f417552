#!/usr/bin/env bash
# Benchmark: `berth --on srv up` (nothing to do) against what it is made of, in the same run
# (interleaved round by round):
#   ssh srv true              over the shared connection (one round trip)
#   berth up                  run directly on the server, in the project's folder there
#   berth --on srv up         from the laptop: one ssh session that syncs (nothing changed)
#                             and runs the remote up
# and the bytes a sync sends after a one-file edit, against the project's size.
# The "server" is tests/support/remote-server.sh (sshd on 127.0.0.1 as user berthsrv, in front
# of this host's engine). Needs root.
# Usage: bench/remote.sh [ROUNDS]   (builds berth in release mode; BERTH=path uses that binary)
set -euo pipefail
rounds="${1:-20}"
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${BERTH:-}" ]; then
  cargo build --release --quiet --manifest-path "$here/Cargo.toml"
  BERTH="$here/target/release/berth"
fi
berth=$(cd "$(dirname "$BERTH")" && pwd)/$(basename "$BERTH")
bash "$here/tests/support/test-image.sh" berth-test/busybox:1 >/dev/null

work=$(mktemp -d)
srv="$work/srv"
mkdir -p "$srv" "$work/home" "$work/run" "$work/proj"
chmod 711 "$work" "$srv"
chmod 700 "$work/run"
sleep 100000 &
watch=$!
bash "$here/tests/support/remote-server.sh" "$srv" "$watch" "$berth" "$here/tests/hosts" >/dev/null
export HOME="$work/home" XDG_RUNTIME_DIR="$work/run" BERTH_SSH="ssh -F $srv/ssh_config"
name="bench-$$"
cd "$work/proj"
printf 'name = "%s"\n[image]\nbase = "berth-test/busybox:1"\n' "$name" >berth.toml
printf 'print("step")\n' >train.py
# A project of some size: 200 source files and a 20 MiB data file.
mkdir -p src data
for i in $(seq 200); do head -c 8192 /dev/urandom | base64 >"src/m$i.py"; done
head -c $((20 << 20)) /dev/urandom >data/blob.bin
# A project as a user has it: files written minutes ago. (A file written within the last 2 s is
# hashed again on every sync, git's "racy clean" rule: measuring right after making 23 MB would
# time that hashing, not the sync of a project at rest.)
find . -type f -exec touch -d '5 minutes ago' {} +
cleanup() {
  "$berth" --on srv down --force -q >/dev/null 2>&1 || true
  # The shared connection would stay 15 minutes: closed now.
  for s in "$work/run/berth/"ssh-*; do
    [ -S "$s" ] && ssh -F "$srv/ssh_config" -o "ControlPath=$s" -O exit srv >/dev/null 2>&1 || true
  done
  kill "$watch" 2>/dev/null || true
  sleep 1
  rm -rf "$work" /home/berthsrv/berth/"$name"-*
}
trap cleanup EXIT
"$berth" remote add srv ssh://srv -q
"$berth" --on srv up -q 2>/dev/null
remote_dir=$(cd /home/berthsrv/berth && ls -d "$name"-*)
sock=$(ls "$work/run/berth/"ssh-* | grep -E '/ssh-[0-9a-f]+$' | head -n 1)

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1000}'; }
us() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 )); }
ssh_m() { ssh -F "$srv/ssh_config" -o "ControlPath=$sock" -o ControlMaster=no srv "$@"; }
# Timed on the server itself: no ssh in the figure.
server_up_us() {
  ssh_m "cd berth/$remote_dir && t0=\$(date +%s%N); berth up >/dev/null 2>&1; t1=\$(date +%s%N); echo \$(( (t1 - t0) / 1000 ))"
}
# One warm-up each, then the three measured in turn within each round, so that the load of
# the moment (other work on the machine) weighs on all three alike.
ssh_m true; server_up_us >/dev/null; "$berth" --on srv up -q
: >"$work/ssh.us"; : >"$work/server.us"; : >"$work/on.us"
for _ in $(seq "$rounds"); do
  us ssh_m true >>"$work/ssh.us"
  server_up_us >>"$work/server.us"
  us "$berth" --on srv up >>"$work/on.us"
done
ssh_true=$(median <"$work/ssh.us")
server_up=$(median <"$work/server.us")
on_up=$(median <"$work/on.us")
parts=$(awk -v a="$ssh_true" -v b="$server_up" 'BEGIN {printf "%.1f", a + b}')

echo "berth $("$berth" --version | cut -d' ' -f2), $(ssh -V 2>&1 | cut -d, -f1), $rounds rounds, medians (ms)"
printf '%-44s %9.1f\n' "ssh srv true (shared connection)" "$ssh_true"
printf '%-44s %9.1f\n' "berth up on the server (nothing to do)" "$server_up"
printf '%-44s %9.1f\n' "  sum: one round trip + the remote up" "$parts"
printf '%-44s %9.1f   %.2fx the sum, %.2fx the remote up\n' "berth --on srv up (nothing to do)" "$on_up" \
  "$(awk -v a="$on_up" -v b="$parts" 'BEGIN {print a/b}')" "$(awk -v a="$on_up" -v b="$server_up" 'BEGIN {print a/b}')"

# One edited file: what the sync sends.
printf 'print("step two")\n' >>train.py
synced=$("$berth" --on srv up 2>&1 >/dev/null | grep '^synced' || true)
size=$(du -sb --exclude=.berth . | cut -f1)
edit=$(stat -c %s train.py)
echo "after editing train.py ($edit bytes) in a project of $size bytes: $synced"
