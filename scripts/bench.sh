#!/bin/sh
# bench.sh: runs every benchmark of the project and writes bench/results.json,
# bench/results.md, the SVG plots and bench/README-table.md (see BENCHMARKS.md).
#
#   scripts/bench.sh [BENCHTIME]
#
# Micro-benchmarks run for BENCHTIME each (default 1s). The scale
# benchmarks (whole domains of agents, membership of 1000 members) run
# exactly once: one run of them takes seconds and the machine is shared.
# The idle-RSS figure needs root (network namespaces); without root it is
# skipped and an earlier figure in results.json is kept.
set -eu
cd "$(dirname "$0")/.."
BENCHTIME=${1:-1s}
GO=${GO:-go}
mkdir -p bench
raw=bench/raw.txt
micro=$(mktemp) scale=$(mktemp) learn=$(mktemp) rss=$(mktemp)
trap 'rm -f "$micro" "$scale" "$learn" "$rss"' EXIT

# Packages with scale benchmarks run those once, and their other
# benchmarks with BENCHTIME.
heavy='^(BenchmarkScaleTimeToReport|BenchmarkScaleTimeToReportLoopback|BenchmarkD2DVersusController|BenchmarkD2DVersusControllerLoopback|BenchmarkMembershipConvergence|BenchmarkMembershipConvergenceRing|BenchmarkMembershipNews|BenchmarkMembershipLearn|BenchmarkAgentIdleRSS)$'

echo "== micro-benchmarks (benchtime $BENCHTIME)" >&2
for pkg in $($GO list ./...); do
	names=$($GO test -list '^Benchmark' "$pkg" 2>/dev/null | grep '^Benchmark' | grep -Ev "$heavy" || true)
	[ -n "$names" ] || continue
	re="^($(echo $names | tr ' ' '|'))\$"
	$GO test -run '^$' -bench "$re" -benchmem -benchtime "$BENCHTIME" "$pkg" | tee -a "$micro"
done

echo "== scale benchmarks (once each)" >&2
# The simulated domains hold every member's state in one heap (a device
# holds only its own): a larger GC target keeps two cores on the work.
GOGC=400 $GO test -run '^$' -bench '^(BenchmarkMembershipConvergence|BenchmarkMembershipConvergenceRing|BenchmarkMembershipNews)$' -benchmem -benchtime 1x -timeout 20m ./discovery | tee -a "$scale"
# One member learning a formed domain: 50 learns, so that the domain
# grows by no more than 5 % while it is measured.
GOGC=400 $GO test -run '^$' -bench '^BenchmarkMembershipLearn$' -benchmem -benchtime 50x -timeout 10m ./discovery | tee -a "$learn"
GOGC=400 $GO test -run '^$' -bench '^(BenchmarkScaleTimeToReport|BenchmarkScaleTimeToReportLoopback|BenchmarkD2DVersusController|BenchmarkD2DVersusControllerLoopback)$' -benchmem -benchtime 1x -timeout 20m ./simulate | tee -a "$scale"
if [ "$(id -u)" = 0 ]; then
	$GO test -run '^$' -bench '^BenchmarkAgentIdleRSS$' -benchtime 1x -timeout 5m ./simulate | tee -a "$rss"
else
	echo "bench: not root, BenchmarkAgentIdleRSS skipped (its earlier figure is kept)" >&2
fi

cat "$micro" "$scale" "$learn" "$rss" > "$raw"
$GO run ./bench/benchreport -in "$micro" -out bench -benchtime "$BENCHTIME"
$GO run ./bench/benchreport -in "$scale" -out bench -benchtime 1x -prefix GOGC=400
$GO run ./bench/benchreport -in "$learn" -out bench -benchtime 50x -prefix GOGC=400
if [ -s "$rss" ]; then
	$GO run ./bench/benchreport -in "$rss" -out bench -benchtime 1x -prefix sudo
fi
echo "bench: results in bench/results.json, bench/results.md, bench/*.svg, bench/README-table.md" >&2
