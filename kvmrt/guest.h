/* What the guest-side assembly (guest.S) and the host agree on: I/O ports,
 * selectors, the control block and the per-vCPU system area. Included by C
 * and by assembly. */
#ifndef KVMRT_GUEST_H
#define KVMRT_GUEST_H

/* Ports. CPL3 may use GUEST_PORT_USER_FIRST..LAST (the TSS I/O bitmap allows
 * exactly those); everything else is for the CPL0 stubs. */
#define GUEST_PORT_USER_FIRST 0x10
#define GUEST_PORT_DONE       0x10   /* the call returned: result in ctl */
#define GUEST_PORT_NOP        0x11   /* a bare exit (benchmarks) */
#define GUEST_PORT_PROBE      0x12   /* fuzz_kvm: an access completed */
#define GUEST_PORT_USER_LAST  0x1f
#define GUEST_PORT_SYSCALL    0x7f   /* LSTAR stub */
#define GUEST_PORT_EXC        0x80   /* + vector: exception stubs */

/* GDT selectors (Linux's order, so STAR could serve sysret). */
#define GUEST_SEL_KCODE 0x08
#define GUEST_SEL_KDATA 0x10
#define GUEST_SEL_UDATA 0x1b   /* 0x18 | RPL 3 */
#define GUEST_SEL_UCODE 0x23   /* 0x20 | RPL 3 */
#define GUEST_SEL_TSS   0x28   /* 16-byte descriptor: entries 5 and 6 */
#define GUEST_GDT_ENTRIES 7

/* Control block offsets (struct guest_ctl). The loop keeps its address in
 * r15, which the SysV ABI makes callee-saved, so fn cannot lose it. */
#define CTL_FN    0
#define CTL_ARG   8
#define CTL_STACK 16
#define CTL_RET   24

/* Per-vCPU system area: one mapping, every piece at a fixed offset so the
 * host finds the exception frame without asking KVM. */
#define AREA_GDT      0x0000
#define AREA_TSS      0x1000
#define AREA_IST1_TOP 0x4000   /* exceptions: pages 2-3 */
#define AREA_IST2_TOP 0x5000   /* #DF: page 4 */
#define AREA_RSP0_TOP 0x6000   /* page 5 */
#define AREA_CTL      0x6000   /* page 6 */
#define AREA_SIZE     0x7000

/* The frame the CPU pushes on IST1 (16-byte aligned top): the stubs push a
 * zero error code where the CPU does not, so it is always 6 words. */
#define FRAME_WORDS 6

#ifndef __ASSEMBLER__
#include <stdint.h>

struct guest_ctl {
	uint64_t fn;
	uint64_t arg;
	uint64_t stack_top;
	uint64_t ret;
};

/* guest.S */
extern const char kvmrt_guest_loop[];
extern const char kvmrt_stub_syscall[];
extern const uint64_t kvmrt_stub_table[32];
extern const char kvmrt_guest_text_start[], kvmrt_guest_text_end[];
#endif

#endif
