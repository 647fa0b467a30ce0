#!/usr/bin/env bash
# make check: valid traces scale (issue 14). Release and ASan+UBSan builds of
# kvmpt-trace, each case under a time limit and a memory limit (`ulimit -v`
# for release where the case reserves no more than it uses; an RSS limit
# for ASan, which reserves terabytes of address space, and for the 64 GiB
# pool, which reserves 64 GiB by design), must end with exit 0, "check ok"
# and the expected message:
#   65,537 and 1,000,000 single-page maps with alternating permissions (no
#     two ranges merge): O(log n) per op in the shadow and the per-op checks;
#   pool 16777216 (the documented maximum, 64 GiB): reserved, touched on use;
#   one 512 GiB map with a PA that forbids huge leaves (262,658 tables, 1 GiB
#     of them), then check: progress on stderr, and check_rebuild compares
#     chunk by chunk instead of building a second 1 GiB table set.
# To debug a case, run the command it prints by hand.
set -u
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0 n=0

# one VARIANT SECS VMEM_KB(0: none) RSS_KB STDERR-SUBSTRING FILE
one() {
	local variant=$1 secs=$2 vmem=$3 rss_max=$4 msg=$5 file=$6
	local bin=build/$variant/kvmpt-trace lim=:
	[ "$variant" = release ] && [ "$vmem" != 0 ] && lim="ulimit -v $vmem"
	n=$((n + 1))
	local start=$(date +%s.%N)
	(
		$lim
		ASAN_OPTIONS="hard_rss_limit_mb=$((rss_max / 1024 + 64)):${ASAN_OPTIONS:-}" \
			exec timeout "$secs" /usr/bin/time -f '%M' -o "$tmp/rss" "$bin" "$file" >"$tmp/out" 2>"$tmp/err"
	)
	local st=$? rss secs_taken
	secs_taken=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
	rss=$(tail -n 1 "$tmp/rss" 2>/dev/null)
	local what="$bin $(basename "$file") (limits ${secs}s, vmem ${vmem} KiB, rss $rss_max KiB)"
	if [ $st -ne 0 ]; then
		echo "FAIL: $what: exit $st after ${secs_taken}s"; tail -n 5 "$tmp/err" | sed 's/^/    | /'; fail=1
	elif ! grep -q '^check ok$' "$tmp/out"; then
		echo "FAIL: $what: no 'check ok'"; tail -n 3 "$tmp/out" | sed 's/^/    | /'; fail=1
	elif [[ "$(cat "$tmp/err")" != *"$msg"* ]]; then
		echo "FAIL: $what: stderr lacks '$msg'"; tail -n 3 "$tmp/err" | sed 's/^/    | /'; fail=1
	elif [ "${rss:-0}" -gt "$rss_max" ]; then
		echo "FAIL: $what: peak RSS $rss KiB"; fail=1
	else
		echo "ok: $what: ${secs_taken}s, $rss KiB"
	fi
}

maps() {   # maps N: N single-page maps, permissions alternating, then check
	awk -v n="$1" 'BEGIN { print "pool 8192"
		for (i = 0; i < n; i++) printf "map 0x%x 0x1000 0x%x %s\n", i * 4096, i * 4096, i % 2 ? "r" : "rw"
		print "check"; print "stats" }'
}
maps 65537 >"$tmp/maps65537.trace"
maps 1000000 >"$tmp/maps1m.trace"
printf 'pool 16777216\nmap 0x1000 0x200000 0x1000 rw\nmap 0x40000000 0x40000000 0x40000000 rx\nstats\ncheck\n' \
	>"$tmp/pool_max.trace"
printf 'pool 270000\nmap 0x8000000000 0x8000000000 0x1000 rw\nstats\ncheck\n' >"$tmp/map512g.trace"

for v in release asubsan; do
	if [ ! -x build/$v/kvmpt-trace ]; then
		echo "FAIL: build/$v/kvmpt-trace not built"; fail=1; continue
	fi
	one $v 60 524288 131072 "" "$tmp/maps65537.trace"
	one $v 120 1048576 262144 "" "$tmp/maps1m.trace"
	# 64 GiB reserved (ulimit -v would have to allow it): the proof is the RSS.
	one $v 30 0 65536 "" "$tmp/pool_max.trace"
	# The tables alone are 1 GiB; a second table set would be 2.1 GB.
	one $v 240 1677722 1468006 "check: rebuild compared 100%" "$tmp/map512g.trace"
done
echo "trace-scale: $n cases, $([ $fail = 0 ] && echo all as expected || echo some failed)"
exit $fail
