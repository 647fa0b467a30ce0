/* VM and vCPU bring-up in 64-bit long mode, and the exit loop of one call.
 * Values and pitfalls: shared/KVM-NOTES.md ("Long-mode setup pitfalls"). */
#include "vcpu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "guest.h"

#define CR0_PE 0x1ull
#define CR0_MP 0x2ull
#define CR0_ET 0x10ull
#define CR0_NE 0x20ull
#define CR0_WP 0x10000ull
#define CR0_PG 0x80000000ull
#define CR4_PAE        0x20ull
#define CR4_OSFXSR     0x200ull
#define CR4_OSXMMEXCPT 0x400ull
#define CR4_OSXSAVE    0x40000ull
#define EFER_SCE 0x1ull
#define EFER_LME 0x100ull
#define EFER_LMA 0x400ull
#define EFER_NXE 0x800ull

#define MSR_PAT    0x277u
#define MSR_STAR   0xc0000081u
#define MSR_LSTAR  0xc0000082u
#define MSR_SFMASK 0xc0000084u

/* PAT entry 1 = WC (pt.h: PT_WC selects index 1); the rest as at reset. */
#define GUEST_PAT 0x0007040600070106ull
/* syscall clears IF, TF, DF, AC, NT. */
#define GUEST_SFMASK 0x47700ull

#define XCR0_X87_SSE_AVX 0x7ull
#define XCR0_AVX512      0xe0ull

#define TSS_IOMAP_BASE 0x68u
#define TSS_IOMAP_BYTES 32u   /* ports 0..255; anything above is past the limit: #GP */

/* Not in older headers: KVM_EXIT_MEMORY_FAULT (6.8+) and its payload. */
#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39
#endif
struct vcpu_memory_fault {
	uint64_t flags, gpa, size;
};

void vcpu_fault_set(struct kvmrt_fault *f, enum kvmrt_reason reason, const char *fmt, ...)
{
	va_list ap;

	f->reason = reason;
	va_start(ap, fmt);
	vsnprintf(f->why, sizeof(f->why), fmt, ap);
	va_end(ap);
}

/* ---- VM ---------------------------------------------------------------- */

static uint64_t host_xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

/* XCR0 for the guest: what leaf 0xD advertises, what the host enabled, and
 * only the x87/SSE/AVX/AVX-512 components (PKRU would need CR4.PKE). */
static uint64_t vm_pick_xcr0(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *d = kvm_cpuid_find(c, 0xd, 0);
	uint64_t adv = d ? ((uint64_t)d->edx << 32 | d->eax) : XCR0_X87_SSE_AVX;
	uint64_t x = adv & host_xgetbv0() & (XCR0_X87_SSE_AVX | XCR0_AVX512);

	/* AVX-512 state comes as a unit: all three components or none. */
	if ((x & XCR0_AVX512) != XCR0_AVX512)
		x &= ~XCR0_AVX512;
	return x | 1;
}

/* IDT gate for a 64-bit interrupt gate at CPL0 with an IST index. */
static void vm_set_gate(uint64_t *idt, int vec, uint64_t handler, int ist)
{
	idt[2 * vec] = (handler & 0xffff) | (uint64_t)GUEST_SEL_KCODE << 16 | (uint64_t)ist << 32 |
		       (uint64_t)(0x8e) << 40 | ((handler >> 16) & 0xffff) << 48;
	idt[2 * vec + 1] = handler >> 32;
}

static int vm_build_idt(struct vm *vm)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	vm->idt = p;
	/* #DF gets its own stack (IST2) so a broken IST1 still reports. */
	for (int v = 0; v < 32; v++)
		vm_set_gate(vm->idt, v, kvmrt_stub_table[v], v == 8 ? 2 : 1);
	return 0;
}

int vm_create(struct vm *vm, int cpl, size_t stack_size, const char **why)
{
	int err;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->fd = -1;
	vm->cpl = cpl;
	vm->stack_size = stack_size;
	vm->backend = kvm_backend_probe();
	err = kvm_open_dev(why);
	if (err < 0)
		return err;
	vm->kvm_fd = err;
	err = -EINVAL;
	*why = "KVM_CAP_USER_MEMORY missing";
	if (kvm_ioctl_val(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0)
		goto fail;
	long slots = kvm_ioctl_val(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	vm->max_slots = slots > 0 ? (uint32_t)slots : 32;
	long r = kvm_ioctl_val(vm->kvm_fd, KVM_CREATE_VM, 0);
	*why = "KVM_CREATE_VM failed";
	if (r < 0) {
		err = (int)r;
		goto fail;
	}
	vm->fd = (int)r;
	r = kvm_ioctl_val(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	*why = "KVM_GET_VCPU_MMAP_SIZE failed";
	if (r <= 0) {
		err = r < 0 ? (int)r : -EINVAL;
		goto fail;
	}
	vm->run_size = (size_t)r;
	*why = "KVM_GET_SUPPORTED_CPUID failed";
	err = kvm_supported_cpuid(vm->kvm_fd, &vm->cpuid);
	if (err)
		goto fail;
	vm->xcr0 = vm_pick_xcr0(vm->cpuid);
	vm->has_avx512 = (vm->xcr0 & XCR0_AVX512) == XCR0_AVX512;
	*why = "cannot allocate the IDT";
	err = vm_build_idt(vm);
	if (err)
		goto fail;
	return 0;
fail:
	vm_destroy(vm);
	return err;
}

void vm_destroy(struct vm *vm)
{
	if (vm->idt)
		munmap(vm->idt, 4096);
	free(vm->cpuid);
	if (vm->fd >= 0)
		close(vm->fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->fd = -1;
}

/* ---- vCPU system area -------------------------------------------------- */

static uint64_t gdt_tss_low(uint64_t base, uint32_t limit)
{
	return (limit & 0xffff) | (base & 0xffffff) << 16 | 0xbull << 40 | 1ull << 47 |
	       (uint64_t)((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
}

static uint32_t vcpu_tss_limit(void)
{
	return TSS_IOMAP_BASE + TSS_IOMAP_BYTES + 1 - 1;   /* + the 0xff terminator */
}

/* GDT and TSS. Descriptors must match what KVM_SET_SREGS loads: iretq
 * reloads CS and SS from here. */
static void vcpu_build_area(struct vcpu *v)
{
	uint64_t *gdt = (uint64_t *)(v->area + AREA_GDT);
	uint8_t *tss = v->area + AREA_TSS;
	uint64_t tss_va = (uint64_t)(uintptr_t)tss;
	uint64_t rsp0 = (uint64_t)(uintptr_t)(v->area + AREA_RSP0_TOP);
	uint64_t ist1 = (uint64_t)(uintptr_t)(v->area + AREA_IST1_TOP);
	uint64_t ist2 = (uint64_t)(uintptr_t)(v->area + AREA_IST2_TOP);
	uint16_t iomap = TSS_IOMAP_BASE;

	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffull;   /* kernel code: L=1, DPL0, type 0xb */
	gdt[2] = 0x00cf93000000ffffull;   /* kernel data: type 3 */
	gdt[3] = 0x00cff3000000ffffull;   /* user data: DPL3 */
	gdt[4] = 0x00affb000000ffffull;   /* user code: L=1, DPL3 */
	gdt[5] = gdt_tss_low(tss_va, vcpu_tss_limit());
	gdt[6] = tss_va >> 32;

	memset(tss, 0, 4096);
	memcpy(tss + 4, &rsp0, 8);
	memcpy(tss + 36, &ist1, 8);
	memcpy(tss + 44, &ist2, 8);
	memcpy(tss + 102, &iomap, 2);
	/* I/O bitmap: 1 = #GP. CPL3 may use only the user ports. */
	memset(tss + TSS_IOMAP_BASE, 0xff, TSS_IOMAP_BYTES + 1);
	for (unsigned p = GUEST_PORT_USER_FIRST; p <= GUEST_PORT_USER_LAST; p++)
		tss[TSS_IOMAP_BASE + p / 8] &= (uint8_t)~(1u << (p % 8));
}

uint16_t vcpu_code_sel(const struct vm *vm)
{
	return vm->cpl == 3 ? GUEST_SEL_UCODE : GUEST_SEL_KCODE;
}

static void seg_code(struct kvm_segment *s, int dpl)
{
	*s = (struct kvm_segment){ .base = 0, .limit = 0xffffffff,
				   .selector = dpl ? GUEST_SEL_UCODE : GUEST_SEL_KCODE,
				   .type = 0xb, .present = 1, .dpl = (uint8_t)dpl, .db = 0, .s = 1, .l = 1, .g = 1 };
}

static void seg_data(struct kvm_segment *s, int dpl, uint64_t base)
{
	*s = (struct kvm_segment){ .base = base, .limit = 0xffffffff,
				   .selector = dpl ? GUEST_SEL_UDATA : GUEST_SEL_KDATA,
				   .type = 3, .present = 1, .dpl = (uint8_t)dpl, .db = 1, .s = 1, .g = 1 };
}

/* The thread's FS base (glibc keeps the TCB's own address at %fs:0). */
static uint64_t vcpu_thread_fs(void)
{
	uint64_t fs;

	__asm__("mov %%fs:0, %0" : "=r"(fs));
	return fs;
}

/* Long mode at the workload's CPL on top of what KVM_GET_SREGS returned
 * (keeps apic_base and friends valid). */
static void vcpu_make_sregs(struct vcpu *v, struct kvm_sregs *s)
{
	int dpl = v->vm->cpl == 3 ? 3 : 0;

	s->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	s->cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE;
	s->efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
	s->cr3 = v->vm->cr3;
	s->cr2 = 0;
	seg_code(&s->cs, dpl);
	seg_data(&s->ss, dpl, 0);
	seg_data(&s->ds, dpl, 0);
	seg_data(&s->es, dpl, 0);
	seg_data(&s->gs, dpl, 0);
	seg_data(&s->fs, dpl, vcpu_thread_fs());
	s->tr = (struct kvm_segment){ .base = (uint64_t)(uintptr_t)(v->area + AREA_TSS),
				      .limit = vcpu_tss_limit(), .selector = GUEST_SEL_TSS,
				      .type = 0xb, .present = 1, .s = 0 };
	s->ldt = (struct kvm_segment){ .selector = 0, .type = 2, .present = 0, .unusable = 1 };
	s->gdt.base = (uint64_t)(uintptr_t)(v->area + AREA_GDT);
	s->gdt.limit = GUEST_GDT_ENTRIES * 8 - 1;
	s->idt.base = (uint64_t)(uintptr_t)v->vm->idt;
	s->idt.limit = 4095;
	memset(s->interrupt_bitmap, 0, sizeof(s->interrupt_bitmap));
}

static int vcpu_set_xcr0(struct vcpu *v, const char **why)
{
	struct kvm_xcrs x = { .nr_xcrs = 1 };

	x.xcrs[0].xcr = 0;
	x.xcrs[0].value = v->vm->xcr0;
	long r = kvm_ioctl(v->fd, KVM_SET_XCRS, &x);
	if (r < 0)
		*why = "KVM_SET_XCRS failed (XCR0 from CPUID leaf 0xD refused)";
	return (int)r;
}

static int vcpu_set_msrs(struct vcpu *v, const char **why)
{
	const struct { uint32_t index; uint64_t value; const char *name; } m[] = {
		{ MSR_PAT, GUEST_PAT, "KVM_SET_MSRS PAT refused" },
		{ MSR_STAR, (uint64_t)GUEST_SEL_KCODE << 32 | (uint64_t)(GUEST_SEL_KDATA) << 48,
		  "KVM_SET_MSRS STAR refused" },
		{ MSR_LSTAR, (uint64_t)(uintptr_t)kvmrt_stub_syscall, "KVM_SET_MSRS LSTAR refused" },
		{ MSR_SFMASK, GUEST_SFMASK, "KVM_SET_MSRS SFMASK refused" },
	};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		int err = kvm_set_msr(v->fd, m[i].index, m[i].value);
		if (err) {
			*why = m[i].name;
			return err;
		}
	}
	return 0;
}

/* Registers for the top of the guest loop; clears pending events so a call
 * that stopped mid-exception cannot leak into the next. */
static int vcpu_reset(struct vcpu *v)
{
	struct guest_ctl *ctl = (struct guest_ctl *)(v->area + AREA_CTL);
	struct kvm_regs regs = {
		.rip = (uint64_t)(uintptr_t)kvmrt_guest_loop,
		.rsp = ctl->stack_top,
		.r15 = (uint64_t)(uintptr_t)ctl,
		.rflags = 0x2,
	};
	struct kvm_vcpu_events ev;
	long r;

	/* A call abandoned at an I/O or MMIO exit leaves KVM an operation to
	 * complete on the next KVM_RUN (advance RIP, write a register), which
	 * would land on the registers we are about to set: let it complete now
	 * without entering the guest. */
	if (v->dirty) {
		v->run->immediate_exit = 1;
		r = kvm_ioctl(v->fd, KVM_RUN, NULL);
		v->run->immediate_exit = 0;
		if (r < 0 && r != -EINTR)
			return (int)r;
	}
	vcpu_make_sregs(v, &v->sregs);
	r = kvm_ioctl(v->fd, KVM_SET_SREGS, &v->sregs);
	if (r < 0)
		return (int)r;
	r = kvm_ioctl(v->fd, KVM_SET_REGS, &regs);
	if (r < 0)
		return (int)r;
	memset(&ev, 0, sizeof(ev));
	r = kvm_ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev);
	if (r < 0)
		return (int)r;
	v->dirty = false;
	v->repeat = 0;
	return 0;
}

int vcpu_create(struct vm *vm, struct vcpu *v, int id, const char **why)
{
	long r;
	int err;

	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->id = id;
	v->fd = -1;
	r = kvm_ioctl_val(vm->fd, KVM_CREATE_VCPU, (unsigned long)id);
	*why = "KVM_CREATE_VCPU failed";
	if (r < 0)
		return (int)r;
	v->fd = (int)r;
	err = -ENOMEM;
	*why = "cannot mmap the vCPU's kvm_run";
	v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		goto fail;
	}
	/* Populated: the CPU reads GDT/TSS/IST while delivering an exception,
	 * where a host fault would be a slot over unmapped memory. */
	*why = "cannot allocate the vCPU's system area";
	v->area = mmap(NULL, AREA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (v->area == MAP_FAILED) {
		v->area = NULL;
		goto fail;
	}
	*why = "cannot allocate the vCPU's stack";
	v->stack = mmap(NULL, vm->stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (v->stack == MAP_FAILED) {
		v->stack = NULL;
		goto fail;
	}
	vcpu_build_area(v);
	struct guest_ctl *ctl = (struct guest_ctl *)(v->area + AREA_CTL);
	ctl->stack_top = (uint64_t)(uintptr_t)(v->stack + vm->stack_size);

	/* Order matters: CPUID before SREGS (CR4.OSXSAVE) and XCRS. */
	*why = "KVM_SET_CPUID2 failed";
	err = (int)kvm_ioctl(v->fd, KVM_SET_CPUID2, vm->cpuid);
	if (err)
		goto fail;
	*why = "KVM_GET_SREGS failed";
	err = (int)kvm_ioctl(v->fd, KVM_GET_SREGS, &v->sregs);
	if (err)
		goto fail;
	*why = "KVM_SET_SREGS/REGS failed (long-mode state refused)";
	err = vcpu_reset(v);
	if (err)
		goto fail;
	err = vcpu_set_xcr0(v, why);
	if (err)
		goto fail;
	err = vcpu_set_msrs(v, why);
	if (err)
		goto fail;
	return 0;
fail:
	vcpu_destroy(v);
	return err;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->stack)
		munmap(v->stack, v->vm->stack_size);
	if (v->area)
		munmap(v->area, AREA_SIZE);
	if (v->run)
		munmap(v->run, v->vm->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->stack = NULL;
	v->area = NULL;
	v->run = NULL;
	v->fd = -1;
}

/* ---- the exit loop ----------------------------------------------------- */

static const char *const vcpu_vector_names[32] = {
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound",
	"#UD invalid opcode", "#NM device not available", "#DF double fault", "coprocessor overrun",
	"#TS invalid TSS", "#NP segment not present", "#SS stack fault", "#GP general protection",
	"#PF page fault", "vector 15", "#MF x87 error", "#AC alignment check", "#MC machine check",
	"#XM SIMD error", "#VE", "#CP control protection", "vector 22", "vector 23", "vector 24",
	"vector 25", "vector 26", "vector 27", "#HV", "#VC", "#SX", "vector 31",
};

/* The exception frame on IST1 (IST2 for #DF). */
static const uint64_t *vcpu_frame(const struct vcpu *v, int vec)
{
	size_t top = vec == 8 ? AREA_IST2_TOP : AREA_IST1_TOP;
	return (const uint64_t *)(v->area + top) - FRAME_WORDS;
}

static int vcpu_page_fault(struct vcpu *v, struct kvmrt_fault *f)
{
	const uint64_t *fr = vcpu_frame(v, 14);
	struct kvm_sregs s;
	long r = kvm_ioctl(v->fd, KVM_GET_SREGS, &s);

	if (r < 0) {
		f->err = (int)r;
		vcpu_fault_set(f, KVMRT_HOST_ERROR, "KVM_GET_SREGS after #PF failed: %s", strerror((int)-r));
		return (int)r;
	}
	f->vector = 14;
	f->addr = s.cr2;
	f->error_code = fr[0];
	f->rip = fr[1];
	/* The same address faulting again and again means the service did not
	 * make progress (an engine bug): stop rather than spin. */
	if (s.cr2 == v->repeat_cr2 && ++v->repeat > 8) {
		vcpu_fault_set(f, KVMRT_PAGE_FAULT, "#PF at 0x%llx err 0x%llx rip 0x%llx repeats after service: no progress",
			       (unsigned long long)s.cr2, (unsigned long long)fr[0], (unsigned long long)fr[1]);
		return -EFAULT;
	}
	if (s.cr2 != v->repeat_cr2) {
		v->repeat_cr2 = s.cr2;
		v->repeat = 0;
	}
	return v->vm->ops->page_fault(v->vm->ctx, v, s.cr2, fr[0], fr[1], f);
}

/* Reads n bytes at va of our own address space without risking SIGSEGV. */
static bool vcpu_peek(uint64_t va, void *buf, size_t n)
{
	struct iovec local = { buf, n }, remote = { (void *)(uintptr_t)va, n };
	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n;
}

static int vcpu_syscall(struct vcpu *v, struct kvmrt_fault *f);

static int vcpu_exception(struct vcpu *v, int vec, struct kvmrt_fault *f)
{
	const uint64_t *fr = vcpu_frame(v, vec);
	uint8_t insn[2];

	/* PVM enters LSTAR but stays at CPL3, so the stub's out raises #GP; a
	 * backend without syscall support may fault on the instruction itself. */
	if (vec == 13 && fr[1] == (uint64_t)(uintptr_t)kvmrt_stub_syscall)
		return vcpu_syscall(v, f);
	if ((vec == 13 || vec == 6) && vcpu_peek(fr[1], insn, 2) && insn[0] == 0x0f && insn[1] == 0x05)
		return vcpu_syscall(v, f);
	f->vector = vec;
	f->error_code = fr[0];
	f->rip = fr[1];
	vcpu_fault_set(f, KVMRT_EXCEPTION, "%s (vector %d) error code 0x%llx at rip 0x%llx cs 0x%llx rsp 0x%llx",
		       vcpu_vector_names[vec], vec, (unsigned long long)fr[0], (unsigned long long)fr[1],
		       (unsigned long long)fr[2], (unsigned long long)fr[4]);
	return -EFAULT;
}

static int vcpu_syscall(struct vcpu *v, struct kvmrt_fault *f)
{
	struct kvm_regs regs;
	long r = kvm_ioctl(v->fd, KVM_GET_REGS, &regs);

	if (r < 0)
		return (int)r;
	/* Through LSTAR rcx holds the return address; through #GP the frame
	 * holds the syscall instruction's own. */
	uint64_t at = vcpu_frame(v, 13)[1];
	bool lstar = v->run->io.port == GUEST_PORT_SYSCALL || at == (uint64_t)(uintptr_t)kvmrt_stub_syscall;
	f->addr = regs.rax;
	f->rip = lstar ? regs.rcx - 2 : at;
	vcpu_fault_set(f, KVMRT_SYSCALL, "guest executed syscall %llu at rip 0x%llx (%s)",
		       (unsigned long long)regs.rax, (unsigned long long)f->rip,
		       lstar ? "entered LSTAR" : "faulted on the instruction");
	return -EFAULT;
}

/* 0 when the call is done, 1 to run on, -EFAULT / -errno to stop. */
static int vcpu_exit_io(struct vcpu *v, uint64_t *ret, struct kvmrt_fault *f)
{
	struct kvm_run *run = v->run;
	uint16_t port = run->io.port;

	if (port == GUEST_PORT_EXC + 14) {
		v->n.pf++;
		int err = vcpu_page_fault(v, f);
		return err ? err : 1;
	}
	v->n.io++;
	if (port == GUEST_PORT_DONE) {
		*ret = ((struct guest_ctl *)(v->area + AREA_CTL))->ret;
		return 0;
	}
	if (port == GUEST_PORT_NOP)
		return 1;
	if (port > GUEST_PORT_EXC && port < GUEST_PORT_EXC + 32)
		return vcpu_exception(v, port - GUEST_PORT_EXC, f);
	if (port == GUEST_PORT_EXC)
		return vcpu_exception(v, 0, f);
	if (port == GUEST_PORT_SYSCALL)
		return vcpu_syscall(v, f);
	if (v->vm->ops->port && port >= GUEST_PORT_USER_FIRST && port <= GUEST_PORT_USER_LAST) {
		uint32_t val = 0;
		memcpy(&val, (uint8_t *)run + run->io.data_offset, run->io.size < 4 ? run->io.size : 4);
		int err = v->vm->ops->port(v->vm->ctx, v, port, val, f);
		return err ? err : 1;
	}
	vcpu_fault_set(f, KVMRT_HOST_ERROR, "unexpected I/O exit: port 0x%x size %u %s",
		       port, run->io.size, run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in");
	return -EFAULT;
}

static int vcpu_exit_mmio(struct vcpu *v, struct kvmrt_fault *f)
{
	struct kvm_run *run = v->run;

	v->n.mmio++;
	if (!v->vm->ops->mmio) {
		vcpu_fault_set(f, KVMRT_MMIO, "MMIO exit at gpa 0x%llx len %u with no handler",
			       (unsigned long long)run->mmio.phys_addr, run->mmio.len);
		return -EFAULT;
	}
	int err = v->vm->ops->mmio(v->vm->ctx, v, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
				   run->mmio.is_write, f);
	if (err) {
		struct kvm_regs regs;
		if (kvm_ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
			f->rip = regs.rip;
		return err;
	}
	return 1;
}

static int vcpu_exit_internal(struct vcpu *v, struct kvmrt_fault *f)
{
	struct kvm_run *run = v->run;
	struct kvm_regs regs;
	char bytes[16 * 3 + 1] = "";

	v->n.internal++;
	f->suberror = run->internal.suberror;
	if (kvm_ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
		f->rip = regs.rip;
	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		uint32_t n = run->emulation_failure.insn_size;
		f->insn_len = n > 15 ? 15 : n;
		memcpy(f->insn, run->emulation_failure.insn_bytes, f->insn_len);
	}
	for (uint32_t i = 0; i < f->insn_len; i++)
		snprintf(bytes + 3 * i, 4, "%02x ", f->insn[i]);
	vcpu_fault_set(f, KVMRT_EMULATION, "KVM_EXIT_INTERNAL_ERROR suberror %u (%s) at rip 0x%llx, instruction bytes: %s",
		       run->internal.suberror,
		       run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? "emulation failure" : "other",
		       (unsigned long long)f->rip, f->insn_len ? bytes : "(none given)");
	return -EFAULT;
}

static int vcpu_exit_other(struct vcpu *v, struct kvmrt_fault *f)
{
	struct kvm_run *run = v->run;
	struct kvm_regs regs = { 0 };

	v->n.other++;
	kvm_ioctl(v->fd, KVM_GET_REGS, &regs);
	f->rip = regs.rip;
	switch (run->exit_reason) {
	case KVM_EXIT_SHUTDOWN:
		vcpu_fault_set(f, KVMRT_SHUTDOWN, "KVM_EXIT_SHUTDOWN (triple fault) at rip 0x%llx",
			       (unsigned long long)regs.rip);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		vcpu_fault_set(f, KVMRT_HOST_ERROR, "KVM_EXIT_FAIL_ENTRY reason 0x%llx",
			       (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	default:
		vcpu_fault_set(f, KVMRT_HOST_ERROR, "unexpected exit reason %u at rip 0x%llx",
			       run->exit_reason, (unsigned long long)regs.rip);
		break;
	}
	return -EFAULT;
}

/* KVM_RUN failed with EFAULT: a slot over host memory that is not there. */
static int vcpu_run_efault(struct vcpu *v, struct kvmrt_fault *f)
{
	struct kvm_regs regs = { 0 };

	v->n.other++;
	kvm_ioctl(v->fd, KVM_GET_REGS, &regs);
	f->rip = regs.rip;
	f->err = -EFAULT;
	if (v->run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
		const struct vcpu_memory_fault *mf = (const void *)&v->run->mmio;
		uint64_t va = 0;
		if (v->vm->ops->gpa_to_va && v->vm->ops->gpa_to_va(v->vm->ctx, mf->gpa, &va))
			f->addr = va;
		vcpu_fault_set(f, KVMRT_EFAULT, "KVM_RUN: EFAULT at gpa 0x%llx (va 0x%llx) rip 0x%llx: host memory behind the slot is not accessible",
			       (unsigned long long)mf->gpa, (unsigned long long)va, (unsigned long long)regs.rip);
	} else {
		vcpu_fault_set(f, KVMRT_EFAULT, "KVM_RUN: EFAULT at rip 0x%llx: host memory behind a slot is not accessible",
			       (unsigned long long)regs.rip);
	}
	return -EFAULT;
}

int vcpu_call(struct vcpu *v, uint64_t fn, uint64_t arg, uint64_t *ret, struct kvmrt_fault *f)
{
	struct guest_ctl *ctl = (struct guest_ctl *)(v->area + AREA_CTL);
	uint64_t fs = vcpu_thread_fs();
	long r;
	int err;

	memset(f, 0, sizeof(*f));
	f->vector = -1;
	if (v->dirty || v->sregs.fs.base != fs) {
		err = vcpu_reset(v);
		if (err) {
			f->err = err;
			vcpu_fault_set(f, KVMRT_HOST_ERROR, "resetting vCPU %d failed: %s", v->id, strerror(-err));
			return err;
		}
	}
	ctl->fn = fn;
	ctl->arg = arg;
	v->repeat = 0;       /* "no progress" is about one call */
	v->repeat_cr2 = 0;
	for (;;) {
		if (v->vm->ops->enter) {
			err = v->vm->ops->enter(v->vm->ctx, v);
			if (err) {
				f->err = err;
				vcpu_fault_set(f, KVMRT_HOST_ERROR, "vCPU %d: flush point before KVM_RUN failed: %s",
					       v->id, strerror(-err));
				break;
			}
		}
		r = kvm_ioctl(v->fd, KVM_RUN, NULL);
		if (r == -EINTR || r == -EAGAIN) {
			/* A kick (shootdown): immediate_exit was set so that a
			 * signal landing just before KVM_RUN is not lost. */
			__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			v->n.other++;
			continue;
		}
		if (r == -EFAULT) {
			err = vcpu_run_efault(v, f);
			break;
		}
		if (r < 0) {
			f->err = (int)r;
			vcpu_fault_set(f, KVMRT_HOST_ERROR, "KVM_RUN failed: %s", strerror((int)-r));
			err = (int)r;
			break;
		}
		switch (v->run->exit_reason) {
		case KVM_EXIT_IO:
			err = vcpu_exit_io(v, ret, f);
			break;
		case KVM_EXIT_MMIO:
			err = vcpu_exit_mmio(v, f);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			err = vcpu_exit_internal(v, f);
			break;
		default:
			err = vcpu_exit_other(v, f);
			break;
		}
		if (err <= 0)
			break;
	}
	if (v->vm->ops->leave)
		v->vm->ops->leave(v->vm->ctx, v);
	if (err)
		v->dirty = true;
	return err;
}

int vcpu_flush_tlb(struct vcpu *v)
{
	struct kvm_sregs s;
	long r = kvm_ioctl(v->fd, KVM_GET_SREGS, &s);
	if (r < 0)
		return (int)r;
	for (int i = 0; i < 2; i++) {
		s.cr4 ^= 1ull << 7; /* CR4.PGE */
		r = kvm_ioctl(v->fd, KVM_SET_SREGS, &s);
		if (r < 0)
			return (int)r;
	}
	return 0;
}

int vm_zap_shadow(struct vm *vm)
{
	uint32_t id = vm->max_slots - 1;
	int err = kvm_set_region(vm->fd, id, VM_SCRATCH_GPA, 4096, (uint64_t)(uintptr_t)vm->idt, false);
	if (err)
		return err;
	return kvm_set_region(vm->fd, id, VM_SCRATCH_GPA, 0, (uint64_t)(uintptr_t)vm->idt, false);
}
