#!/bin/bash
# Runs every built-in scenario over seeds 1..SEEDS (default 20) at a small
# size and prints one line per run and a table per scenario. Usage, from
# the repository root:
#
#	simulation/sweep.sh [SEEDS] [OUTDIR]
#
# Each run's summary, report.json and timeline.svg land in OUTDIR/SCENARIO-SEED.
set -euo pipefail
seeds=${1:-20}
outdir=${2:-$(mktemp -d /tmp/ringleader-sweep.XXXXXX)}
mkdir -p "$outdir"
go build -o "$outdir/peer" ./cmd/peer
results="$outdir/results.txt"
: >"$results"
for seed in $(seq 1 "$seeds"); do
	for s in $("$outdir/peer" simulate --list | awk 'NF {print $1}'); do
		p=3
		case $s in bridge | join-during-partition) p=4 ;; esac
		start=$(date +%s.%N)
		rc=0
		timeout 300 "$outdir/peer" simulate --quiet --peers "$p" --scenario "$s" --speed 6 --seed "$seed" \
			--out "$outdir/$s-$seed" >"$outdir/$s-$seed.txt" 2>&1 || rc=$?
		end=$(date +%s.%N)
		line="$s seed=$seed peers=$p rc=$rc wall=$(echo "$end - $start" | bc)"
		echo "$line" | tee -a "$results"
	done
done
echo
awk '{sc=$1; split($4,r,"="); split($5,w,"="); n[sc]++; if (r[2]==0) p[sc]++; ws[sc]+=w[2]}
	END {for (s in n) printf "%-22s %d/%d seeds pass, mean wall %.1fs\n", s, p[s], n[s], ws[s]/n[s]}' "$results" | sort
echo "runs and reports: $outdir"
