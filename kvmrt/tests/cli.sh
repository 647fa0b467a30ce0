#!/usr/bin/env bash
# The kvmrt command's interface: the last line is exactly
# "exits: mmio=N pf=N io=N internal=N other=N shootdowns=N reclaimed=N", and the exit statuses are
# 0 ok, 1 failure, 2 usage, 3 emulation failure, 77 no usable /dev/kvm.
# Runs build/kvmrt (release). Debug: run the failing command line by hand.
set -u
cd "$(dirname "$0")/../.."
bin=build/kvmrt
fail=0
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
if [ ! -e /dev/kvm ]; then echo "SKIP kvm: /dev/kvm does not exist"; exit 77; fi

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
