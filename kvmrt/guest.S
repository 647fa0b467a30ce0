/* Guest-side code: the call loop (runs at the workload's CPL) and the CPL0
 * exception stubs. On PVM every CPL0 instruction is emulated (~0.7 us), so
 * the stubs are as short as they can be: an `out` hands the event to the
 * host, which reads the frame from the IST stack in shared memory and CR2
 * from the vCPU. Only the #PF stub is ever resumed. */
#include "guest.h"

	.section .text.kvmrt_guest, "ax", @progbits
	.globl kvmrt_guest_text_start
kvmrt_guest_text_start:

/* r15 = &struct guest_ctl. Runs fn(arg) on a fresh stack, stores the result,
 * exits; the next KVM_RUN continues with the next call. */
	.globl kvmrt_guest_loop
	.type kvmrt_guest_loop, @function
kvmrt_guest_loop:
1:	mov CTL_STACK(%r15), %rsp
	mov CTL_ARG(%r15), %rdi
	call *CTL_FN(%r15)
	mov %rax, CTL_RET(%r15)
	out %al, $GUEST_PORT_DONE
	jmp 1b
	.size kvmrt_guest_loop, . - kvmrt_guest_loop

	.globl kvmrt_guest_nop_exit
	.type kvmrt_guest_nop_exit, @function
kvmrt_guest_nop_exit:
	out %al, $GUEST_PORT_NOP
	ret
	.size kvmrt_guest_nop_exit, . - kvmrt_guest_nop_exit

/* LSTAR: the host reports the syscall and never resumes here. */
	.globl kvmrt_stub_syscall
kvmrt_stub_syscall:
	out %al, $GUEST_PORT_SYSCALL
2:	hlt
	jmp 2b

	.macro STUB vec, has_err
	.align 16
kvmrt_stub_\vec:
	.if \has_err == 0
	pushq $0
	.endif
	out %al, $(GUEST_PORT_EXC + \vec)
	.if \vec == 14
	/* #PF: the host mapped the page; drop the error code and retry. */
	add $8, %rsp
	iretq
	.else
3:	hlt
	jmp 3b
	.endif
	.endm

	STUB 0, 0
	STUB 1, 0
	STUB 2, 0
	STUB 3, 0
	STUB 4, 0
	STUB 5, 0
	STUB 6, 0
	STUB 7, 0
	STUB 8, 1
	STUB 9, 0
	STUB 10, 1
	STUB 11, 1
	STUB 12, 1
	STUB 13, 1
	STUB 14, 1
	STUB 15, 0
	STUB 16, 0
	STUB 17, 1
	STUB 18, 0
	STUB 19, 0
	STUB 20, 0
	STUB 21, 1
	STUB 22, 0
	STUB 23, 0
	STUB 24, 0
	STUB 25, 0
	STUB 26, 0
	STUB 27, 0
	STUB 28, 0
	STUB 29, 1
	STUB 30, 1
	STUB 31, 0

	.globl kvmrt_guest_text_end
kvmrt_guest_text_end:

	.section .data.rel.ro, "aw", @progbits
	.align 8
	.globl kvmrt_stub_table
kvmrt_stub_table:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad kvmrt_stub_\v
	.endr

	.section .note.GNU-stack, "", @progbits
