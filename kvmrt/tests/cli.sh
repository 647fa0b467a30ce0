#!/usr/bin/env bash
# The kvmrt command's interface: `kvmrt list` prints the scenarios, --help
# the usage; the last line of a run is exactly
# "exits: mmio=N pf=N io=N internal=N other=N shootdowns=N reclaimed=N", and
# the exit statuses are 0 ok, 1 failure, 2 usage, 3 emulation failure, 77 no
# usable /dev/kvm; an emulation failure is reported once.
# Runs build/kvmrt (release). Debug: run the failing command line by hand.
set -u
cd "$(dirname "$0")/../.."
bin=build/kvmrt
fail=0
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }

# What needs no /dev/kvm: list, --help, usage errors.
scens="touch xsave avx rep-movs cmpxchg16b lock-xadd unmapped race collapse-race unmap-race"
out=$("$bin" list); rc=$?
[ $rc = 0 ] && [ "$(echo $out)" = "$scens" ] || { echo "FAIL: kvmrt list: status $rc, '$(echo $out)' (want '$scens')"; fail=1; }
out=$("$bin" --help); rc=$?
[ $rc = 0 ] && grep -q '^usage: kvmrt run SCENARIO' <<<"$out" || { echo "FAIL: kvmrt --help: status $rc"; fail=1; }
for args in "" "run" "run no-such-scenario" "run touch --cpl 1" "frobnicate"; do
	"$bin" $args >/dev/null 2>&1; rc=$?
	[ $rc = 2 ] || { echo "FAIL: kvmrt $args: status $rc (want 2, usage)"; fail=1; }
done
[ $fail = 0 ] && echo "ok: kvmrt list, --help and usage errors (status 2)"
if [ ! -e /dev/kvm ]; then
	[ $fail = 0 ] || exit 1
	echo "SKIP kvm: /dev/kvm does not exist (list/--help/usage checked)"
	exit 77
fi

# run EXPECTED_STATUS LAST_LINE_REGEX ARGS...
run() {
	local want=$1 re=$2; shift 2
	local out rc last
	out=$("$bin" "$@" 2>&1); rc=$?
	if [ $rc -eq 77 ]; then echo "$out" | grep -m1 '^SKIP' || echo "SKIP kvm: unusable"; exit 77; fi
	last=$(printf '%s\n' "$out" | tail -n 1)
	if [ $rc -ne "$want" ] || ! [[ $last =~ $re ]]; then
		echo "FAIL: kvmrt $*: status $rc (want $want), last line '$last' (want /$re/)"
		printf '%s\n' "$out" | tail -n 8 | sed 's/^/    /'
		fail=1
	else
		echo "ok: kvmrt $*: status $rc: $last"
	fi
}
n='[0-9]+'
pos='[1-9][0-9]*'
run 0 "^exits: mmio=0 pf=$pos io=$n internal=0 other=$n shootdowns=0 reclaimed=0\$" run touch --check
run 0 "^exits: mmio=0 pf=$pos io=$n internal=0 other=$n shootdowns=0 reclaimed=0\$" run rep-movs --vcpus 2
run 0 "^exits: mmio=$pos pf=0 io=$n internal=0 other=$n shootdowns=0 reclaimed=0\$" run touch --legacy
run 3 "^exits: mmio=$pos pf=0 io=$n internal=$pos other=$n shootdowns=0 reclaimed=0\$" run xsave --legacy
# The emulation failure is reported once (the result line points at it).
out=$("$bin" run xsave --legacy 2>&1)
[ "$(grep -c 'KVM_EXIT_INTERNAL_ERROR' <<<"$out")" = 1 ] || { echo "FAIL: xsave --legacy reports the emulation failure $(grep -c KVM_EXIT_INTERNAL_ERROR <<<"$out") times:"; sed 's/^/    /' <<<"$out"; fail=1; }
run 0 "^exits: mmio=0 pf=$n io=$n internal=0 other=$n shootdowns=0 reclaimed=0\$" run unmapped
KVMRT_CHECK=1 run 0 "^exits: mmio=0 pf=$pos io=$n internal=0 other=$n shootdowns=0 reclaimed=0\$" run race --cpl 3
run 0 "^exits: mmio=0 pf=$n io=$n internal=0 other=$n shootdowns=$pos reclaimed=$pos\$" run collapse-race --vcpus 4 --check
run 0 "^exits: mmio=0 pf=$pos io=$n internal=0 other=$n shootdowns=$pos reclaimed=$pos\$" run unmap-race --vcpus 4 --check
run 2 "" run no-such-scenario
run 2 "" run touch --cpl 1
out=$("$bin" run unmapped 2>&1)
grep -q 'fault: reason=page-fault addr=0x[0-9a-f]* error_code=0x4' <<<"$out" || { echo "FAIL: unmapped printed no #PF fault record"; fail=1; }
grep -q '^kvmrt: backend PVM\|^kvmrt: backend SVM\|^kvmrt: backend VMX\|^kvmrt: backend unknown' <<<"$out" || { echo "FAIL: no backend line"; fail=1; }
exit $fail
