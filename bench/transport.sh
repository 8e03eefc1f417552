#!/usr/bin/env bash
# Benchmark: moving an environment, berth against what a user would otherwise type, one run,
# same machine, same moment, with ratios and the issue's targets:
#   berth pack            vs  docker save | gzip      (time, size)   target: >= 3x faster, no larger
#   berth pack            vs  docker save > file      (time: the engine's own export, the floor)
#                                                                     target: within 1.2x
#   berth pack            vs  docker save | zstd -T0 -3  (time, size: what a user who knows zstd
#                                                     types)          target: within 1.1x
#   berth unpack          vs  docker load < x.tar.gz  (time)          target: >= 2x faster
#                         vs  docker load < plain tar (time: the engine's own import, the floor)
#   berth ship            vs  docker save | ssh host docker load      (bytes sent, time), to a host
#                             that already has the base              target: <= 1.05x the bytes of
#                                                                     the layers it lacks
# The image (>= 500 MB, made offline): a base of files from this host's /usr (real binaries and
# data, compressible as a CUDA base is) plus incompressible noise, and an application layer on
# top. The "remote server" is a second engine behind sshd on loopback (needs root and
# openssh-server, like the ship tests).
# Usage: bench/transport.sh        (builds berth in release mode; needs a Docker engine)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
berth="$here/target/release/berth"
bash "$here/tests/support/test-image.sh" berth-test/busybox:1 >/dev/null

work=$(mktemp -d /tmp/berth-bench-XXXXXX)
base=berth-bench/base:$$
app=berth-bench/app:$$
remote="$work/remote"
cleanup() {
  docker rmi -f "$app" "$base" >/dev/null 2>&1 || true
  [ -d "$remote" ] && bash "$here/tests/support/remote-engine.sh" --stop "$remote" || true
  rm -rf "$work"
}
trap cleanup EXIT
export HOME="$work/home"
mkdir -p "$HOME"

# Files of this host, in a stable order, up to $1 bytes, skipping the first $2 bytes' worth.
# (awk stops reading early: the SIGPIPE that find and sort get is expected.)
host_files() (
  set +o pipefail
  find /usr/lib /usr/share /usr/bin -xdev -type f -size +4k -printf '%s %p\n' 2>/dev/null | sort -k2 |
    awk -v want="$1" -v skip="$2" '{ t += $1; if (t <= skip) next; if (t - skip > want) exit; sub(/^[0-9]+ /, ""); print }'
)
echo "== making the image (base: the test image's files + host files + noise; an app layer on top)"
mkdir -p "$work/noise" "$work/app/noise"
head -c $((60 << 20)) /dev/urandom >"$work/noise/weights.bin"
docker save berth-test/busybox:1 | tar -xOf - --wildcards '*/layer.tar' >"$work/base.tar"
host_files $((360 << 20)) 0 | sed 's|^/||' >"$work/base.list"
tar -C / -rf "$work/base.tar" --transform 's|^|opt/base/|' -T "$work/base.list"
tar -C "$work" -rf "$work/base.tar" --transform 's|^|opt/base/|' noise
docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
  "$work/base.tar" "$base" >/dev/null
rm -rf "$work/base.tar" "$work/noise"
host_files $((110 << 20)) $((360 << 20)) | sed 's|^/||' >"$work/app.list"
tar -C / -cf - -T "$work/app.list" | tar -C "$work/app" -xf - --transform 's|^|files/|'
head -c $((40 << 20)) /dev/urandom >"$work/app/noise/checkpoint.bin"
printf 'FROM %s\nCOPY files /opt/app\nCOPY noise /opt/app/noise\n' "$base" >"$work/app/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$app" "$work/app" >/dev/null 2>&1
rm -rf "$work/app"
size=$(docker image inspect --format '{{.Size}}' "$app")
echo "image $app: $((size >> 20)) MiB in $(docker image inspect --format '{{len .RootFS.Layers}}' "$app") layers, the base's shared"

proj="$work/proj"
mkdir -p "$proj"
printf 'name = "bench"\n[image]\nbase = "%s"\n' "$app" >"$proj/berth.toml"
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
bytes() { stat -c %s "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
sync

echo "== pack (save, save | zstd and pack: medians of 3 interleaved rounds; gzip once, it is far slower)"
docker save "$app" >/dev/null   # warm the page cache, so every contender reads the same way
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for round in 1 2 3; do
  t0=$(now); docker save "$app" >"$work/plain.tar"; t1=$(now); secs "$t0" "$t1" >>"$work/save.times"; echo >>"$work/save.times"
  t0=$(now); docker save "$app" | zstd -q -T0 -3 >"$work/image.tar.zst"; t1=$(now)
  secs "$t0" "$t1" >>"$work/zstd.times"; echo >>"$work/zstd.times"
  t0=$(now); "$berth" -C "$proj" pack -q --force -o "$work/image.berth.tar.zst"; t1=$(now)
  secs "$t0" "$t1" >>"$work/pack.times"; echo >>"$work/pack.times"
done
save_t=$(median <"$work/save.times"); pack_t=$(median <"$work/pack.times"); zstd_t=$(median <"$work/zstd.times")
zstd_b=$(stat -c %s "$work/image.tar.zst"); rm -f "$work/image.tar.zst"
t0=$(now); docker save "$app" | gzip >"$work/image.tar.gz"; t1=$(now); gzip_t=$(secs "$t0" "$t1")
plain_b=$(bytes "$work/plain.tar"); gzip_b=$(bytes "$work/image.tar.gz"); pack_b=$(bytes "$work/image.berth.tar.zst")
echo "save: $(tr '\n' ' ' <"$work/save.times")s; save | zstd: $(tr '\n' ' ' <"$work/zstd.times")s; pack: $(tr '\n' ' ' <"$work/pack.times")s; save | gzip: $gzip_t s"

echo "== a remote server with the base (second engine + sshd on loopback)"
bash "$here/tests/support/remote-engine.sh" "$remote" $$ >/dev/null
port=$(cat "$remote/port")
rdocker() { DOCKER_HOST="unix://$remote/docker.sock" docker "$@"; }
docker save "$base" | rdocker load >/dev/null
ssh_cmd=(ssh -F "$remote/ssh_config" -p "$port" root@127.0.0.1)
# What the remote lacks: the layers of the app that are not the base's, as docker save has them.
lacking=0
for diff in $(docker image inspect --format '{{join .RootFS.Layers " "}}' "$app"); do
  docker image inspect --format '{{join .RootFS.Layers " "}}' "$base" | grep -q "$diff" && continue
  for member in $(tar -tf "$work/plain.tar" | grep 'layer.tar$'); do
    if [ "sha256:$(tar -xOf "$work/plain.tar" "$member" | sha256sum | cut -d' ' -f1)" = "$diff" ]; then
      lacking=$((lacking + $(tar -xOf "$work/plain.tar" "$member" | wc -c)))
    fi
  done
done
echo "== unpack on an engine without the image (the base removed too)"
appid=$(docker image inspect --format '{{.Id}}' "$app")
docker save "$base" >"$work/base.tar"
docker rmi -f "$app" >/dev/null; docker rmi -f "$base" >/dev/null
t0=$(now); docker load <"$work/plain.tar" >/dev/null; t1=$(now); plainload_t=$(secs "$t0" "$t1")
docker rmi -f "$app" >/dev/null
t0=$(now); docker load <"$work/image.tar.gz" >/dev/null; t1=$(now); gzload_t=$(secs "$t0" "$t1")
docker rmi -f "$app" >/dev/null
t0=$(now); "$berth" -C "$work/unpacked" unpack -q "$work/image.berth.tar.zst"; t1=$(now); unpack_t=$(secs "$t0" "$t1")
[ "$(docker image inspect --format '{{.Id}}' "$app")" = "$appid" ] || { echo "unpack changed the image id" >&2; exit 1; }
echo "== unpack on an engine that has the base (a new version of the environment arrives)"
docker rmi -f "$app" >/dev/null; docker load <"$work/base.tar" >/dev/null; rm -f "$work/base.tar"
t0=$(now); docker load <"$work/image.tar.gz" >/dev/null; t1=$(now); gzload2_t=$(secs "$t0" "$t1")
docker rmi -f "$app" >/dev/null
t0=$(now); "$berth" -C "$work/unpacked" unpack -q --force "$work/image.berth.tar.zst"; t1=$(now)
unpack2_t=$(secs "$t0" "$t1")
[ "$(docker image inspect --format '{{.Id}}' "$app")" = "$appid" ] || { echo "unpack changed the image id" >&2; exit 1; }

echo "== ship"
t0=$(now); docker save "$app" | tee >(wc -c >"$work/naive.bytes") | "${ssh_cmd[@]}" docker load >/dev/null; t1=$(now)
naive_t=$(secs "$t0" "$t1"); sleep 0.2; naive_b=$(cat "$work/naive.bytes")
rdocker rmi -f "$app" >/dev/null
t0=$(now)
BERTH_SSH="ssh -F $remote/ssh_config" "$berth" -C "$proj" ship "ssh://root@127.0.0.1:$port" --json >"$work/ship.json"
t1=$(now); ship_t=$(secs "$t0" "$t1")
ship_b=$(sed -n 's/.*"bytes_sent": \([0-9]*\).*/\1/p' "$work/ship.json")
ship_layer_b=$(sed -n 's/.*"layer_bytes_sent": \([0-9]*\).*/\1/p' "$work/ship.json")
[ "$(rdocker image inspect --format '{{.Id}}' "$app")" = "$appid" ] || { echo "ship: different id there" >&2; exit 1; }
t0=$(now)
BERTH_SSH="ssh -F $remote/ssh_config" "$berth" -C "$proj" ship "ssh://root@127.0.0.1:$port" --json >"$work/ship2.json"
t1=$(now); ship2_t=$(secs "$t0" "$t1")
ship2_b=$(sed -n 's/.*"bytes_sent": \([0-9]*\).*/\1/p' "$work/ship2.json")

echo
echo "berth $("$berth" --version | cut -d' ' -f2), $(docker version -f 'Docker {{.Server.Version}}'), $(nproc) cores, image $(mib "$plain_b") as a tar"
printf '%-44s %12s %12s %8s\n' "" "berth" "other" "ratio"
row() { printf '%-44s %12s %12s %7sx\n' "$1" "$2" "$3" "$4"; }
row "pack vs docker save | gzip: time" "${pack_t} s" "${gzip_t} s" "$(ratio "$gzip_t" "$pack_t")"
row "pack vs docker save | gzip: size" "$(mib "$pack_b")" "$(mib "$gzip_b")" "$(ratio "$pack_b" "$gzip_b")"
row "pack vs docker save > file: time" "${pack_t} s" "${save_t} s" "$(ratio "$pack_t" "$save_t")"
row "pack vs docker save | zstd -T0 -3: time" "${pack_t} s" "${zstd_t} s" "$(ratio "$pack_t" "$zstd_t")"
row "pack vs docker save | zstd -T0 -3: size" "$(mib "$pack_b")" "$(mib "$zstd_b")" "$(ratio "$pack_b" "$zstd_b")"
row "unpack vs docker load < x.tar.gz: time" "${unpack_t} s" "${gzload_t} s" "$(ratio "$gzload_t" "$unpack_t")"
row "unpack vs docker load < plain tar: time" "${unpack_t} s" "${plainload_t} s" "$(ratio "$unpack_t" "$plainload_t")"
row "  the same with the base there: vs x.tar.gz" "${unpack2_t} s" "${gzload2_t} s" "$(ratio "$gzload2_t" "$unpack2_t")"
row "ship vs save | ssh load: bytes sent" "$(mib "$ship_b")" "$(mib "$naive_b")" "$(ratio "$naive_b" "$ship_b")"
row "ship vs save | ssh load: time" "${ship_t} s" "${naive_t} s" "$(ratio "$naive_t" "$ship_t")"
row "ship: bytes sent vs layers the host lacks" "$(mib "$ship_b")" "$(mib "$lacking")" "$(ratio "$ship_b" "$lacking")"
row "ship: layer data sent vs layers it lacks" "$(mib "$ship_layer_b")" "$(mib "$lacking")" "$(ratio "$ship_layer_b" "$lacking")"
row "ship again (nothing missing): bytes, time" "${ship2_b} B" "${ship2_t} s" "-"
awk -v zt="$zstd_t" -v pt="$pack_t" -v gt="$gzip_t" -v pb="$pack_b" -v gb="$gzip_b" -v st="$save_t" -v ut="$unpack_t" \
  -v lt="$gzload_t" -v pl="$plainload_t" -v u2="$unpack2_t" -v l2="$gzload2_t" -v sb="$ship_b" -v lb="$lacking" 'BEGIN {
  a = (gt / pt >= 3) && (pb <= gb); b = (pt / st <= 1.2); z = (pt / zt <= 1.1); c = (lt / ut >= 2); c2 = (l2 / u2 >= 2); d = (sb <= 1.05 * lb)
  printf "targets: pack >=3x faster than save|gzip and no larger: %s; pack within 1.2x of save: %s; within 1.1x of save|zstd: %s;\n", a ? "yes" : "NO", b ? "yes" : "NO", z ? "yes" : "NO"
  printf "         unpack >=2x faster than loading the gzip: %s on an empty engine (the engine alone needs %.2fx of the gzip load for the plain tar), %s with the base there;\n", c ? "yes" : "NO", pl / lt, c2 ? "yes" : "NO"
  printf "         ship <=1.05x the bytes of the layers the host lacks: %s\n", d ? "yes" : "NO"
  exit (a && b && z && (c || c2) && d) ? 0 : 1
}'
