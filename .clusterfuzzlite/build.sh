#!/bin/bash -eu
# .clusterfuzzlite/build.sh (also ci/oss-fuzz/build.sh, a link to it): builds
# kvmpt's fuzz targets under ClusterFuzzLite or OSS-Fuzz (and locally through
# ci/oss-fuzz-local, which CI runs).
#
# Reads: the environment of the OSS-Fuzz contract - CC, CFLAGS (sanitizer and
# coverage flags included), CXX, CXXFLAGS, LIB_FUZZING_ENGINE, OUT, WORK (SRC
# is where the checkout lives; this runs in the checkout, as the Dockerfile's
# WORKDIR). Sources come from the Makefile (make print-CORE_SRCS etc.), so a
# new core file or target needs no change here.
#
# Does, for every fuzz target T - every fuzz/fuzz_*.c (the Makefile's
# FUZZ_TARGETS, so a new target joins by itself) but fuzz_kvm, which needs
# /dev/kvm (OSS_FUZZ_TARGETS overrides the list) - compiles the core sources,
# fuzz/T.c and the libFuzzer driver with $CC $CFLAGS, links with
# $CXX $CXXFLAGS ... $LIB_FUZZING_ENGINE into $OUT/T, and writes
# $OUT/T_seed_corpus.zip (exactly the files of corpus/T/, flat; ci/oss-fuzz-local
# checks that), $OUT/T.dict (corpus/T.dict) and $OUT/T.options (the dict,
# timeout, rss limit). libFuzzer's -fsanitize=fuzzer and AFL++'s
# libAFLDriver.a both call the driver's LLVMFuzzerTestOneInput.
#
# Usage: build.sh [--help] (OSS-Fuzz's compile runs it without arguments).
# Debug: run ci/oss-fuzz-local, which sets the same environment here; the
# compile lines are echoed (bash -x shows everything).
case ${1:-} in
-h | --help) sed -n '2,/^case /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
?*) echo "build.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
esac
cd "${KVMPT_SRC:-.}"
WORK=${WORK:-/tmp/kvmpt-oss-fuzz-work}
objdir=$WORK/kvmpt-obj
rm -rf "$objdir"
mkdir -p "$objdir" "$OUT"

mk() { make -s --no-print-directory -f Makefile -f ci/print-var.mk "print-var-$1"; }
core_srcs=$(mk CORE_SRCS)
targets=${OSS_FUZZ_TARGETS:-$(mk FUZZ_TARGETS)}
# fuzz_kvm needs /dev/kvm, which OSS-Fuzz and ClusterFuzzLite runners lack.
targets=$(tr ' ' '\n' <<<"$targets" | grep -v -x 'fuzz_kvm' | tr '\n' ' ' || true)
[ -n "${targets// /}" ] || { echo "build.sh: no fuzz targets" >&2; exit 1; }

flags=(-std=c11 -D_GNU_SOURCE -DPT_DEBUG -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -Icore -Ifuzz)

compile() { # source -> prints the object path
	local o=$objdir/${1//\//_}.o
	if [ ! -f "$o" ]; then
		echo "$CC $CFLAGS ${flags[*]} -c $1" >&2
		# shellcheck disable=SC2086 # CFLAGS is a list of flags
		$CC $CFLAGS "${flags[@]}" -c "$1" -o "$o"
	fi
	echo "$o"
}

core_objs=()
for s in $core_srcs; do core_objs+=("$(compile "$s")"); done
driver=$(compile fuzz/driver_libfuzzer.c)
# The structure-aware mutator (LLVMFuzzerCustomMutator) for the targets the
# Makefile links it into (FUZZ_MUTATOR_TARGETS); as there, without coverage
# feedback of its own (AFL++'s libAFLDriver ignores it).
mutator_targets=" $(mk FUZZ_MUTATOR_TARGETS) "
mutator=""
if [ -f fuzz/mutator.c ] && [ -n "${mutator_targets// /}" ]; then
	mutator=$(CFLAGS=${CFLAGS//-fsanitize=fuzzer-no-link/} compile fuzz/mutator.c)
fi

for t in $targets; do
	objs=("$(compile "fuzz/$t.c")" "$driver")
	[ -n "$mutator" ] && [[ $mutator_targets == *" $t "* ]] && objs+=("$mutator")
	for s in $(mk "FUZZ_EXTRA_SRCS_$t"); do objs+=("$(compile "$s")"); done
	echo "$CXX $CXXFLAGS ... $LIB_FUZZING_ENGINE -o $OUT/$t" >&2
	# shellcheck disable=SC2086
	$CXX $CXXFLAGS "${objs[@]}" "${core_objs[@]}" $LIB_FUZZING_ENGINE $(mk "FUZZ_LDLIBS_$t") -lpthread -o "$OUT/$t"

	rm -f "$OUT/${t}_seed_corpus.zip"
	if [ -d "corpus/$t" ] && [ -n "$(find "corpus/$t" -maxdepth 1 -type f)" ]; then
		find "corpus/$t" -maxdepth 1 -type f | LC_ALL=C sort | zip -q -j -X "$OUT/${t}_seed_corpus.zip" -@
	fi
	[ -f "corpus/$t.dict" ] && cp "corpus/$t.dict" "$OUT/$t.dict"
	{
		echo "[libfuzzer]"
		[ -f "corpus/$t.dict" ] && echo "dict = $t.dict"
		echo "timeout = 25"
		echo "rss_limit_mb = 2560"
	} >"$OUT/$t.options"
done
echo "build.sh: built $targets into $OUT" >&2
