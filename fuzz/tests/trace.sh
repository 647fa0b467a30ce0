#!/usr/bin/env bash
# make check: for every seed of corpus/TARGET, the text trace the replay
# driver prints (--trace) must run through build/kvmpt-trace with exit 0 and
# every `check` ok: the trace tool reproduces what the target did.
set -u
cd "$(dirname "$0")/../.."
t=$1
tool=build/kvmpt-trace
[ -x "$tool" ] || { echo "FAIL: $tool not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 bad=0
for s in corpus/"$t"/*; do
	[ -f "$s" ] || continue
	n=$((n + 1))
	build/replay/"$t" --quiet --trace "$s" >"$tmp/t.trace" || { echo "FAIL: replay of $s"; bad=1; continue; }
	"$tool" "$tmp/t.trace" >"$tmp/out" 2>&1
	rc=$?
	if [ $rc -ne 0 ] || grep -q 'check FAIL' "$tmp/out" || { grep -q '^check' "$tmp/t.trace" && ! grep -q '^check ok' "$tmp/out"; }; then
		echo "FAIL: $s: kvmpt-trace exit $rc"
		grep -n 'FAIL\|error' "$tmp/out" | head -5 | sed 's/^/    /'
		cat "$tmp/out" | tail -5 | sed 's/^/    | /'
		bad=1
	fi
done
echo "$t: $n seed traces through $tool"
[ $n -gt 0 ] || { echo "FAIL: no seeds in corpus/$t"; exit 1; }
exit $bad
