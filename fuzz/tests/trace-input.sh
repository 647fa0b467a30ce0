#!/usr/bin/env bash
# make check: kvmpt-trace never passes bad input silently (issue 14). Every
# case runs under the release build with `ulimit -v` and under the ASan+UBSan
# build with an RSS limit (ASan reserves terabytes of address space, so it
# cannot run under ulimit -v), each with a time limit, and must end with the
# expected exit status, a message naming the file (and line), and a small
# peak RSS: the reader works in constant memory. To debug a case, run the
# command it prints by hand.
set -u
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
VMEM_KB=262144   # release: 256 MiB of address space
RSS_KB=65536     # both: the reader must stay below 64 MiB resident
SECS=30
fail=0 n=0

# one VARIANT STATUS STDERR-SUBSTRING FILE [STDIN-FILE]
one() {
	local variant=$1 want=$2 msg=$3 file=$4 input=${5:-/dev/null}
	local bin=build/$variant/kvmpt-trace lim="ulimit -v $VMEM_KB"
	[ "$variant" = release ] || lim=:
	n=$((n + 1))
	(
		$lim
		ASAN_OPTIONS="hard_rss_limit_mb=$((RSS_KB / 1024 * 4)):${ASAN_OPTIONS:-}" \
			exec timeout $SECS /usr/bin/time -f '%M' -o "$tmp/rss" "$bin" "$file" <"$input" >"$tmp/out" 2>"$tmp/err"
	)
	local st=$? rss
	rss=$(tail -n 1 "$tmp/rss" 2>/dev/null)
	local what="$bin $file${5:+ <$5}"
	if [ $st -ne "$want" ]; then
		echo "FAIL: $what: exit $st, want $want"; sed 's/^/    | /' "$tmp/err" | head -5; fail=1
	elif [[ "$(cat "$tmp/err")" != *"$msg"* ]]; then
		echo "FAIL: $what: stderr lacks '$msg':"; sed 's/^/    | /' "$tmp/err" | head -5; fail=1
	elif [ "${rss:-0}" -gt $RSS_KB ]; then
		echo "FAIL: $what: peak RSS ${rss} KiB above $RSS_KB KiB"; fail=1
	else
		echo "ok: $what: exit $st, '$msg', ${rss:-?} KiB"
	fi
}

mkdir "$tmp/dir"
head -c 100000000 /dev/zero | tr '\0' a >"$tmp/long"          # one 100 MB line
{ echo stats; head -c 512 /dev/zero | tr '\0' b; echo; } >"$tmp/long512"  # 512 chars on line 2
{ echo stats; head -c 511 /dev/zero | tr '\0' ' '; echo; echo stats; } >"$tmp/ok511"
printf '\0frobnicate 1 2\n' >"$tmp/nul1"
printf 'stats\nstats\0garbage\n' >"$tmp/nul2"
printf '# comment\nlookup 0x10\0000\n' >"$tmp/nul3"
printf 'stats\nstats' >"$tmp/nonl"                             # no newline at the end
printf 'stats\nfrobnicate 1 2\nstats\n' >"$tmp/unknown"

for v in release asubsan; do
	if [ ! -x build/$v/kvmpt-trace ]; then
		echo "FAIL: build/$v/kvmpt-trace not built"; fail=1; continue
	fi
	one $v 2 "$tmp/dir: Is a directory" "$tmp/dir"
	one $v 2 "/dev/zero:1: NUL byte" /dev/zero
	one $v 2 "$tmp/long:1: line longer than 511 characters" "$tmp/long"
	one $v 2 "-:1: line longer than 511 characters" - "$tmp/long"
	one $v 2 "$tmp/long512:2: line longer than 511 characters" "$tmp/long512"
	one $v 0 "" "$tmp/ok511"
	one $v 2 "$tmp/nul1:1: NUL byte" "$tmp/nul1"
	one $v 2 "$tmp/nul2:2: NUL byte" "$tmp/nul2"
	one $v 2 "$tmp/nul3:2: NUL byte" "$tmp/nul3"
	one $v 0 "" "$tmp/nonl"
	one $v 2 "$tmp/unknown:2: unknown operation 'frobnicate'" "$tmp/unknown"
	one $v 2 "$tmp/missing: No such file or directory" "$tmp/missing"
done
echo "trace-input: $n cases, $([ $fail = 0 ] && echo all as expected || echo some failed)"
exit $fail
