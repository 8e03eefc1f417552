#!/usr/bin/env bash
# Benchmark: berth against what a user would otherwise type, in the same run, with ratios.
#   berth exec -- true        vs  docker exec C true
#   berth up   (running)      vs  docker inspect C
#   berth up   (stopped)      vs  docker start C
#   berth status (running)    vs  docker inspect C            target: under 40 ms
# Usage: bench/lifecycle.sh [ROUNDS]   (builds berth in release mode; needs a Docker engine)
set -euo pipefail
rounds="${1:-30}"
here="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
berth="$here/target/release/berth"
bash "$here/tests/support/test-image.sh" berth-test/busybox:1

work=$(mktemp -d)
export HOME="$work/home"
mkdir -p "$HOME" "$work/proj"
printf '[image]\nbase = "berth-test/busybox:1"\n' >"$work/proj/berth.toml"
cd "$work/proj"
cleanup() {
  "$berth" down --force -q >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"$berth" up -q
c=$("$berth" status --json | sed -n 's/.*"container_name": "\(.*\)".*/\1/p')

# Median wall time in milliseconds of `rounds` runs of a command (after one warm-up).
median_ms() {
  local n=$1; shift
  "$@" >/dev/null 2>&1 || true
  for _ in $(seq "$n"); do
    local t0 t1
    t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 ))
  done | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1000}'
}
# Median of `rounds` runs of a command that needs the container stopped first (not timed).
median_stopped_ms() {
  local n=$1; shift
  for _ in $(seq "$n"); do
    docker stop -t 0 "$c" >/dev/null
    local t0 t1
    t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 ))
  done | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1000}'
}
row() { awk -v a="$2" -v b="$3" -v what="$1" 'BEGIN {printf "%-34s %9.1f ms %9.1f ms %7.2fx\n", what, a, b, a/b}'; }

echo "berth $("$berth" --version | cut -d' ' -f2), $(docker version -f 'Docker {{.Server.Version}}'), $rounds rounds, medians"
printf '%-34s %12s %12s %8s\n' "" "berth" "docker" "ratio"
be=$(median_ms "$rounds" "$berth" exec -- true)
de=$(median_ms "$rounds" docker exec "$c" true)
row "exec -- true  vs  docker exec" "$be" "$de"
bu=$(median_ms "$rounds" "$berth" up)
di=$(median_ms "$rounds" docker inspect "$c")
row "up (running)  vs  docker inspect" "$bu" "$di"
bst=$(median_ms "$rounds" "$berth" status)
row "status (running)  vs  docker inspect" "$bst" "$di"
small=$(( rounds < 10 ? rounds : 10 ))
bs=$(median_stopped_ms "$small" "$berth" up)
ds=$(median_stopped_ms "$small" docker start "$c")
row "up (stopped)  vs  docker start" "$bs" "$ds"
awk -v e="$be" -v d="$de" -v u="$bu" -v s="$bst" 'BEGIN {
  ok = (e <= d) && (u < 30) && (s < 40)
  printf "targets: exec no slower than docker exec: %s; no-op up under 30 ms: %s; status under 40 ms: %s\n", (e <= d) ? "yes" : "NO", (u < 30) ? "yes" : "NO", (s < 40) ? "yes" : "NO"
  exit ok ? 0 : 1
}'
