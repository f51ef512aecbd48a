#!/usr/bin/env bash
# Measures, with real peer processes in network namespaces, how long after a
# partition heals every peer sees every other peer alive again, and how long
# a minority and a majority take to mark the other side failed.
#
#   sudo cmd/peer/measure/partition-heal.sh [runs]      (from the repo root)
#
# Needs root and iproute2; uses the workplace's netns helpers
# (NETNS=path/to/netns.sh, default ../shared/tools/netns.sh). The cut is a
# layer-2 split (ns_l2_split), so no firewall tool is needed.
set -euo pipefail
runs=${1:-5}
NETNS=${NETNS:-../shared/tools/netns.sh}
[ -f "$NETNS" ] || { echo "netns helpers not found at $NETNS; set NETNS" >&2; exit 1; }
# shellcheck source=/dev/null
source "$NETNS"

work=$(mktemp -d -t ringleader-heal.XXXXXX)
trap 'ns_teardown; rm -rf "$work"' EXIT
go build -o "$work/peer" ./cmd/peer

ns_create 5
for i in 1 2 3 4 5; do
  join=()
  [ "$i" -gt 1 ] && join=(--join "$(ns_ip 1):7946")
  ns_start "$i" peer "$work/n$i.log" "$work/peer" agent --name "n$i" \
    --bind "$(ns_ip "$i"):7946" --rpc "$(ns_ip "$i"):7947" --http 127.0.0.1:7948 \
    --data-dir "$work/d$i" "${join[@]}" >/dev/null
  sleep 0.2
done

now() { date +%s.%N; }
# alive_count i: how many members node i sees alive
alive_count() { ns_exec "$1" curl -sf --max-time 1 http://127.0.0.1:7948/v1/members | jq '[.members[] | select(.status=="alive")] | length' 2>/dev/null || echo 0; }
# wait_until DESC CMD...: poll every 50 ms, up to 120 s
wait_until() {
  local desc=$1; shift
  local end; end=$(( $(date +%s) + 120 ))
  until "$@"; do
    [ "$(date +%s)" -lt "$end" ] || { echo "timed out waiting for $desc" >&2; return 1; }
    sleep 0.05
  done
}
all_see() { local want=$1 i; for i in 1 2 3 4 5; do [ "$(alive_count "$i")" = "$want" ] || return 1; done; }
sees() { [ "$(alive_count "$1")" = "$2" ]; }

wait_until "cluster of 5" all_see 5
echo "run minority_failed_s majority_failed_s heal_all_alive_s"
for r in $(seq 1 "$runs"); do
  t0=$(now)
  ns_l2_split "1 2" 2>/dev/null
  wait_until "majority marks minority failed" sees 3 3; t_maj=$(now)
  wait_until "minority marks majority failed" sees 1 2; t_min=$(now)
  ns_heal_all 2>/dev/null
  t1=$(now)
  wait_until "all alive after heal" all_see 5; t2=$(now)
  printf "%d %.2f %.2f %.2f\n" "$r" "$(echo "$t_min - $t0" | bc)" "$(echo "$t_maj - $t0" | bc)" "$(echo "$t2 - $t1" | bc)"
  sleep 2
done
