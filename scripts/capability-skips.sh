#!/bin/sh
# capability-skips.sh: prints the capability skips of the last test run
# (see scripts/test.sh).
cd "$(dirname "$0")/.."
f=.cache/capability-skips.txt
echo "== capability skips: what this kernel cannot run, and the option behind it"
if [ -s "$f" ]; then
	sort -u "$f" | sed 's/^/  /'
else
	echo "  none"
fi
