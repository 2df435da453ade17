#!/bin/sh
# test.sh: runs every test, then lists every test that left something out
# because the kernel lacks a feature (e.g. seg6local routes without
# CONFIG_IPV6_SEG6_LWTUNNEL), so that no such skip goes unseen.
#
#   scripts/test.sh [go test flags and packages]
#
# The list is also kept in .cache/capability-skips.txt for .ci/run.
set -u
cd "$(dirname "$0")/.."
GO=${GO:-go}
mkdir -p .cache
skips=$(pwd)/.cache/capability-skips.txt
: >"$skips"
D2D_SKIP_LOG=$skips $GO test "$@"
rc=$?
scripts/capability-skips.sh
exit $rc
