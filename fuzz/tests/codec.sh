#!/usr/bin/env bash
# make check: the committed seeds are what the encoder makes of
# corpus/src/TARGET/*.trace (make corpus is up to date), and decoding then
# encoding again is stable: encode(trace(seed)) decodes to the same trace.
set -u
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad=0 n=0
for t in $1; do
	for src in corpus/src/"$t"/*.trace; do
		[ -f "$src" ] || continue
		n=$((n + 1))
		name=$(basename "$src" .trace)
		build/encode/"$t" "$src" "$tmp/a" || { bad=1; continue; }
		cmp -s "$tmp/a" "corpus/$t/$name" || { echo "FAIL: corpus/$t/$name is stale: run make corpus"; bad=1; }
		build/replay/"$t" --quiet --trace "$tmp/a" | grep -v '^#' >"$tmp/t1"
		build/encode/"$t" "$tmp/t1" "$tmp/b" || { echo "FAIL: $src: decoded trace does not encode"; bad=1; continue; }
		build/replay/"$t" --quiet --trace "$tmp/b" | grep -v '^#' >"$tmp/t2"
		# The decoded trace ends with the final check, which encodes as one
		# more op (not when the layout was refused: no check is printed).
		if [ "$(wc -l <"$tmp/t2")" -gt "$(wc -l <"$tmp/t1")" ] && [ "$(tail -n 1 "$tmp/t2")" = check ]; then
			sed '$d' "$tmp/t2" >"$tmp/t2x"
		else
			cp "$tmp/t2" "$tmp/t2x"
		fi
		cmp -s "$tmp/t1" "$tmp/t2x" || { echo "FAIL: $src: trace -> bytes -> trace differs"; diff "$tmp/t1" "$tmp/t2x" | head; bad=1; }
	done
done
echo "$n seed traces encoded and decoded"
exit $bad
