#!/usr/bin/env bash
# Measures, on loopback, the counter API's baselines with one load generator:
#   (a) the no-op handler on the peer's HTTP stack (loadgen --serve-noop, in
#       its own process), with loadgen --mode noop, loadgen --mode incr, and
#       wrk running wrk-incr.lua (the same requests as --mode incr);
#   (a2) the storage floor (loadgen --serve-store, data dir on disk under
#       /var/tmp), warmed with 20 s of increments, with loadgen --mode
#       incr and wrk-incr.lua: the no-op handler plus one crdt apply and one
#       synced store commit per request, the least a durable increment costs
#       (FLOOR_DIR=/dev/shm/floor puts its data dir there instead, say on
#       tmpfs to see it with free fsyncs; the dir must not exist yet, and is
#       removed at the end);
#   (b) only if PEER=host:port is set: a running peer, with loadgen --mode
#       incr, loadgen --mode batch and wrk-incr.lua (start it first, see
#       README.md; set PEER_PID=its pid to see its CPU use);
#   (c) redis-server INCR with --appendonly yes --appendfsync always, with
#       loadgen --mode redis and, for comparison, redis-benchmark;
#   (d) the disk under /var/tmp: how long a 4 KiB write plus fdatasync takes
#       with the machine idle (dd oflag=dsync), and, with PEER set, how long
#       the peer's own log fsyncs took during its single-increment runs (from
#       its /metrics): a durable write waits for one.
# Every run uses 64 connections. Each run's line ends with the CPU seconds
# the server, the generator and everything else on the machine used in it:
# on a shared machine, "others" marks a run that had to share the CPUs.
# Then the medians.
#
#   cmd/peer/loadgen/measure.sh [runs] [seconds]          (from the repo root)
#   PEER=127.0.0.1:7948 PEER_PID=1234 cmd/peer/loadgen/measure.sh 3 10
#
# Needs go, wrk, redis-server, redis-benchmark, dd and /usr/bin/time
# (Debian: apt-get install -y wrk redis-server time).
set -euo pipefail
runs=${1:-3}
secs=${2:-10}
conns=64
noop_port=${NOOP_PORT:-18080}
store_port=${STORE_PORT:-18081}
floor_dir=${FLOOR_DIR:-}
if [ -n "$floor_dir" ] && [ -e "$floor_dir" ]; then
  echo "FLOOR_DIR $floor_dir exists; give a path measure.sh may create and remove" >&2
  exit 2
fi
redis_port=${REDIS_PORT:-16379}
here=$(dirname "$0")
hz=$(getconf CLK_TCK)

# On disk, not tmpfs: redis's fsync must reach the device.
work=$(mktemp -d -p /var/tmp loadgen-measure.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
  if [ -n "$floor_dir" ]; then rm -rf "$floor_dir"; fi
}
trap cleanup EXIT
go build -o "$work/loadgen" ./cmd/peer/loadgen

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# field NAME < loadgen --json output
field() { awk -F': ' -v k="\"$1\"" '$1 ~ k {gsub(/[ ,]/, "", $2); print $2}'; }
# wait_port PORT: until something accepts on 127.0.0.1:PORT (at most 10 s)
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}
# fsync_snap FILE: the peer's ringleader_store_fsync_seconds histogram
fsync_snap() { curl -s "http://$PEER/metrics" | grep -E '^ringleader_store_fsync_seconds_(bucket|sum|count)' >"$1" || true; }
# fsync_stats: count, mean and median of the fsyncs between the two snapshots
fsync_stats() {
  paste "$work/fsync.0" "$work/fsync.1" | awk '{ d = $4 - $2 } /_count/ { c = d } /_sum/ { s = d }
    /_bucket/ { n++; le[n] = $1; cum[n] = d }
    END { if (c == 0) { print "none seen"; exit }
      m = "?"; for (i = 1; i <= n; i++) if (cum[i] >= c / 2) { m = le[i]; sub(/.*le="/, "", m); sub(/".*/, "", m); break }
      printf "%d fsyncs, mean %.0f us, median <= %.0f us", c, s / c * 1e6, m * 1e6 }'
}
# busy: CPU ticks the whole machine spent busy (user nice system irq softirq steal)
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# ticks PID: CPU ticks PID used (0 if unknown)
ticks() { if [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }
# timed CMD...: runs CMD and sets $cpu to "cpu s: server S gen G others O"
# for the server $srv_pid, the command, and the rest of the machine.
timed() {
  local b0 s0 b1 s1
  b0=$(busy)
  s0=$(ticks "$srv_pid")
  /usr/bin/time -f '%U %S' -o "$work/time" "$@"
  b1=$(busy)
  s1=$(ticks "$srv_pid")
  cpu=$(awk -v b="$((b1 - b0))" -v s="$((s1 - s0))" -v hz="$hz" -v g="$(tail -1 "$work/time")" 'BEGIN {
    split(g, t, " "); gen = t[1] + t[2]; srv = s / hz; oth = b / hz - srv - gen; if (oth < 0) oth = 0
    printf "cpu s: server %.1f gen %.1f others %.1f", srv, gen, oth }')
}
# summary LABEL FILE: medians of the columns req/s, p50 ms, p99 ms, and
# incr/s (column 6, loadgen only); the sum of errors (column 4)
summary() {
  printf '%-28s median %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms' "$1" \
    "$(cut -d' ' -f1 "$2" | median)" "$(cut -d' ' -f2 "$2" | median)" "$(cut -d' ' -f3 "$2" | median)"
  if [ "$(cut -d' ' -f6 "$2" | head -1)" != "" ]; then printf '  %9.0f incr/s' "$(cut -d' ' -f6 "$2" | median)"; fi
  printf '  (%s runs; errors %s)\n' "$(wc -l <"$2")" "$(cut -d' ' -f4 "$2" | paste -sd+ | bc)"
}
# lg LABEL ARGS...: runs loadgen $runs times
lg() {
  local label=$1 f="$work/${1//\//_}.runs"
  shift
  : >"$f"
  for i in $(seq "$runs"); do
    timed "$work/loadgen" --connections "$conns" --duration "${secs}s" --json "$@" >"$work/out.json" || true
    local r p50 p99 e inc
    r=$(field requests_per_s <"$work/out.json")
    inc=$(field increments_per_s <"$work/out.json")
    p50=$(field latency_p50_ms <"$work/out.json")
    p99=$(field latency_p99_ms <"$work/out.json")
    e=$(field error_count <"$work/out.json")
    printf '  %-20s run %d: %7.0f req/s %9.0f incr/s  p50 %6.3f  p99 %6.3f  max %7.3f ms  errors %s  %s\n' \
      "$label" "$i" "$r" "$inc" "$p50" "$p99" "$(field latency_max_ms <"$work/out.json")" "$e" "$cpu"
    echo "$r $p50 $p99 $e $(field successes <"$work/out.json") $inc" >>"$f"
  done
  summary "$label" "$f"
}
# ms VALUE-WITH-UNIT: wrk's 789.00us / 1.73ms / 1.02s in ms
ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/) n *= 1000; print n }'; }
# wrkrun LABEL URL: runs wrk -t2 -c64 with wrk-incr.lua $runs times
wrkrun() {
  local label=$1 url=$2 f="$work/${1//\//_}.runs"
  : >"$f"
  for i in $(seq "$runs"); do
    timed wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$here/wrk-incr.lua" "$url" -- 10000 "$i" >"$work/wrk.out"
    local r p50 p99 e
    r=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out")
    p50=$(ms "$(awk '$1 == "50%" {print $2}' "$work/wrk.out")")
    p99=$(ms "$(awk '$1 == "99%" {print $2}' "$work/wrk.out")")
    e=$(awk '/Non-2xx|Socket errors/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i} END {print s + 0}' "$work/wrk.out")
    printf '  %-20s run %d: %7.0f req/s %9s incr/s  p50 %6.3f  p99 %6.3f  max %7s ms  errors %s  %s\n' \
      "$label" "$i" "$r" - "$p50" "$p99" - "$e" "$cpu"
    echo "$r $p50 $p99 $e" >>"$f"
  done
  summary "$label" "$f"
}
# rbrun LABEL PORT: runs redis-benchmark INCR (64 clients, no pipelining,
# 10,000 random keys) $runs times, each of about $secs s at 60,000/s
rbrun() {
  local label=$1 f="$work/${1//\//_}.runs"
  : >"$f"
  for i in $(seq "$runs"); do
    timed redis-benchmark -p "$2" -c "$conns" -n $((secs * 60000)) -r 10000 -P 1 -t incr --csv >"$work/rb.out"
    local line r p50 p99
    line=$(tail -1 "$work/rb.out" | tr -d '"')
    r=$(echo "$line" | cut -d, -f2)
    p50=$(echo "$line" | cut -d, -f5)
    p99=$(echo "$line" | cut -d, -f7)
    printf '  %-20s run %d: %7.0f req/s %9.0f incr/s  p50 %6.3f  p99 %6.3f  max %7.3f ms  errors -  %s\n' \
      "$label" "$i" "$r" "$r" "$p50" "$p99" "$(echo "$line" | cut -d, -f8)" "$cpu"
    echo "$r $p50 $p99 0" >>"$f"
  done
  summary "$label" "$f"
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r), $(go version | cut -d' ' -f3), redis $(redis-server --version | cut -d' ' -f3 | cut -d= -f2), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "# $runs runs of ${secs}s each, $conns connections; latencies in ms"

"$work/loadgen" --serve-noop "127.0.0.1:$noop_port" 2>"$work/noop.log" &
srv_pid=$!
pids+=("$srv_pid")
wait_port "$noop_port"
echo "(a) no-op handler: loadgen --serve-noop 127.0.0.1:$noop_port"
lg noop/loadgen-noop --mode noop --target "127.0.0.1:$noop_port"
lg noop/loadgen-incr --mode incr --target "127.0.0.1:$noop_port"
wrkrun noop/wrk-incr "http://127.0.0.1:$noop_port"
kill "$srv_pid" && wait "$srv_pid" 2>/dev/null || true
unset 'pids[-1]'

floor_dir=${floor_dir:-$work/floor}
"$work/loadgen" --serve-store "127.0.0.1:$store_port" --store-dir "$floor_dir" 2>"$work/floor.log" &
srv_pid=$!
pids+=("$srv_pid")
wait_port "$store_port"
echo "(a2) storage floor: loadgen --serve-store 127.0.0.1:$store_port --store-dir $floor_dir ($(stat -f -c %T "$(dirname "$floor_dir")"))"
"$work/loadgen" --mode incr --target "127.0.0.1:$store_port" --duration 20s >/dev/null || true
lg floor/loadgen-incr --mode incr --target "127.0.0.1:$store_port"
wrkrun floor/wrk-incr "http://127.0.0.1:$store_port"
kill "$srv_pid" && wait "$srv_pid" 2>/dev/null || true
unset 'pids[-1]'

if [ -n "${PEER:-}" ]; then
  srv_pid=${PEER_PID:-}
  echo "(b) peer at $PEER"
  fsync_snap "$work/fsync.0"
  lg peer/loadgen-incr --mode incr --target "$PEER"
  fsync_snap "$work/fsync.1"
  lg peer/loadgen-batch --mode batch --batch 100 --target "$PEER"
  wrkrun peer/wrk-incr "http://$PEER"
fi

mkdir "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --appendonly yes --appendfsync always \
  --save '' --daemonize no --logfile "$work/redis.log" &
srv_pid=$!
pids+=("$srv_pid")
wait_port "$redis_port"
echo "(c) redis-server 127.0.0.1:$redis_port, $(redis-cli -p "$redis_port" config get appendfsync | paste -sd' '), $(redis-cli -p "$redis_port" config get appendonly | paste -sd' ')"
lg redis/loadgen-redis --mode redis --redis-addr "127.0.0.1:$redis_port"
echo "  loadgen saw $(cut -d' ' -f5 "$work/redis_loadgen-redis.runs" | paste -sd+ | bc) INCRs succeed; redis counted $(redis-cli -p "$redis_port" eval "local s = 0 for _, k in ipairs(redis.call('keys', 'lg:*')) do s = s + redis.call('get', k) end return s" 0) in all"
rbrun redis/redis-benchmark "$redis_port"

# dsync_us: mean microseconds of one 4 KiB write + fdatasync, over 1,000
# overwrites of a preallocated file (no file growth, as pebble's recycled log)
dsync_us() {
  /usr/bin/time -f '%e' -o "$work/dsync.time" dd if=/dev/zero of="$work/dsync" bs=4k count=1000 oflag=dsync conv=notrunc 2>/dev/null
  awk '{ printf "%.0f", $1 * 1000 }' "$work/dsync.time"
}
dd if=/dev/zero of="$work/dsync" bs=1M count=4 conv=fsync 2>/dev/null
echo "(d) the disk under $work, idle: 4 KiB write + fdatasync (dd oflag=dsync) $(dsync_us) us each"
if [ -n "${PEER:-}" ]; then
  echo "  the peer's own log fsyncs during its single-increment runs: $(fsync_stats)"
fi

# ratio A B: median req/s of run file A over that of run file B, in %
ratio() { awk -v a="$(cut -d' ' -f1 "$work/$1.runs" | median)" -v b="$(cut -d' ' -f1 "$work/$2.runs" | median)" 'BEGIN { printf "%.1f %%", 100 * a / b }'; }
echo "(e) single increments against the no-op, medians (the issue's target: 60 %)"
echo "  storage floor: loadgen $(ratio floor_loadgen-incr noop_loadgen-noop) (of the no-op serving the same requests: $(ratio floor_loadgen-incr noop_loadgen-incr)), wrk $(ratio floor_wrk-incr noop_wrk-incr)"
if [ -n "${PEER:-}" ]; then
  echo "  peer:          loadgen $(ratio peer_loadgen-incr noop_loadgen-noop) (of the no-op serving the same requests: $(ratio peer_loadgen-incr noop_loadgen-incr)), wrk $(ratio peer_wrk-incr noop_wrk-incr)"
fi
