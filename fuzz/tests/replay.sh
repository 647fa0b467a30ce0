#!/usr/bin/env bash
# make check: replays corpus/TARGET (all at once) and every reproducer under
# crashes/TARGET (one at a time, so that a regression names its entry)
# through the ASan+UBSan replay build. Any regular file under crashes/TARGET
# counts except *.md, *.txt, *.trace and *.log.
set -u
cd "$(dirname "$0")/../.."
t=$1
bin=build/replay-asan/$t
[ -x "$bin" ] || { echo "FAIL: $bin not built (make fuzz-build-replay)"; exit 1; }
ran=0 failed=0
if [ -d "corpus/$t" ]; then
	"$bin" --quiet "corpus/$t"
	rc=$?
	[ $rc -eq 77 ] && exit 77
	[ $rc -eq 0 ] || { echo "FAIL: corpus/$t does not replay cleanly (exit $rc)"; failed=1; }
	ran=$((ran + $(find "corpus/$t" -type f | wc -l)))
fi
if [ -d "crashes/$t" ]; then
	while IFS= read -r -d '' f; do
		case $f in *.md | *.txt | *.trace | *.log) continue ;; esac
		ran=$((ran + 1))
		if ! out=$("$bin" --quiet "$f" 2>&1); then
			entry=${f#crashes/$t/}
			echo "FAIL: regression: crashes/$t/$entry reproduces again (signature: ${entry%%/*})"
			echo "$out" | tail -n 15 | sed 's/^/    /'
			failed=1
		fi
	done < <(find "crashes/$t" -type f -print0 | sort -z)
fi
echo "$t: $ran inputs replayed through $bin"
exit $failed
