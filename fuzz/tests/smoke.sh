#!/usr/bin/env bash
# make check: a short, bounded libFuzzer run of TARGET (SECONDS) from the
# shipped corpus and dictionary. New inputs go to a temporary folder, never
# into corpus/. A crash fails the test and prints the reproducer's trace.
set -u
cd "$(dirname "$0")/../.."
t=$1 secs=${2:-8}
bin=build/libfuzzer/$t
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/new"
dict=()
[ -f "corpus/$t.dict" ] && dict=(-dict="corpus/$t.dict")
seeds=()
[ -d "corpus/$t" ] && seeds=("corpus/$t")
# libFuzzer's own exit status for a crash is 77, the status a declining
# fuzz_init uses too: give crashes 1 so that a finding can never pass as a skip.
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1 -error_exitcode=1 \
	-artifact_prefix="$tmp/" "${dict[@]}" "$tmp/new" "${seeds[@]}" >"$tmp/log" 2>&1
rc=$?
[ $rc -eq 77 ] && ! grep -q 'ERROR: libFuzzer\|ERROR: AddressSanitizer\|SUMMARY:' "$tmp/log" &&
	{ grep -m1 '^SKIP' "$tmp/log" || echo "SKIP $t: fuzz_init declined"; exit 77; }
grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|cov: ' "$tmp/log" | tail -3
if [ $rc -ne 0 ]; then
	echo "FAIL: $t smoke fuzz found a crash (exit $rc)"
	grep -v '^#' "$tmp/log" | grep -E 'FAIL|ERROR|SUMMARY|fuzz_' | head -20
	for a in "$tmp"/crash-* "$tmp"/timeout-* "$tmp"/oom-*; do
		[ -f "$a" ] || continue
		mkdir -p build/fuzz-smoke-artifacts && cp "$a" build/fuzz-smoke-artifacts/
		echo "reproducer: build/fuzz-smoke-artifacts/${a##*/}; trace:"
		build/replay/"$t" --quiet --trace "$a" 2>/dev/null | head -40
	done
	exit 1
fi
exit 0
