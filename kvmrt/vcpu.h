/* The VM and its vCPUs: 64-bit long mode with a GDT, a TSS (RSP0, IST
 * stacks, I/O bitmap), an IDT of CPL0 stubs, CPUID/XCR0 so SSE/AVX work, and
 * the exit loop that runs one guest call. Knows KVM and x86, not the engine:
 * page faults and MMIO exits go to the vm_ops the owner supplies. */
#ifndef KVMRT_VCPU_H
#define KVMRT_VCPU_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm.h"
#include "kvmrt.h"

struct vcpu;

/* Return rule of the hooks: 0 the vCPU may run on, -EFAULT stop the call
 * with the fault record the hook filled, other -errno a host failure. */
struct vm_ops {
	/* A #PF with CR2 and error code at rip (frame cs says the CPL). */
	int (*page_fault)(void *ctx, struct vcpu *v, uint64_t cr2, uint64_t err, uint64_t rip,
			  struct kvmrt_fault *f);
	/* KVM_EXIT_MMIO: serve it (fill data for reads). */
	int (*mmio)(void *ctx, struct vcpu *v, uint64_t gpa, uint8_t *data, uint32_t len, bool is_write,
		    struct kvmrt_fault *f);
	/* VA of gpa for reports, or false. */
	bool (*gpa_to_va)(void *ctx, uint64_t gpa, uint64_t *va);
	/* An out to a user port other than DONE/NOP (fuzz_kvm's probe). */
	int (*port)(void *ctx, struct vcpu *v, uint16_t port, uint32_t value, struct kvmrt_fault *f);
	/* Optional: before every KVM_RUN of a call (the flush point: the owner
	 * may call vcpu_flush_tlb), and once when the call's exit loop ends.
	 * enter returns 0 or -errno (the call stops as a host error). */
	int (*enter)(void *ctx, struct vcpu *v);
	void (*leave)(void *ctx, struct vcpu *v);
};

struct vm {
	int kvm_fd;
	int fd;
	enum kvm_backend backend;
	int cpl;                   /* 3 or 0: the workload's privilege */
	size_t run_size;
	size_t stack_size;
	struct kvm_cpuid2 *cpuid;  /* what every vCPU gets */
	uint64_t xcr0;
	uint64_t cr3;              /* root table PA, set before the first vCPU runs */
	uint64_t *idt;             /* one page, shared */
	uint32_t max_slots;        /* KVM_CAP_NR_MEMSLOTS */
	const struct vm_ops *ops;
	void *ctx;
	bool has_avx512;
};

struct vcpu_counts {
	_Atomic uint64_t mmio, pf, io, internal, other;
};

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	uint8_t *area;             /* AREA_SIZE bytes: GDT, TSS, IST stacks, ctl */
	uint8_t *stack;            /* the workload's stack */
	struct kvm_sregs sregs;    /* what we last set (FS base cached here) */
	bool dirty;                /* a call stopped mid-way: reset before the next */
	atomic_bool busy;          /* claimed by a caller */
	uint64_t repeat_cr2;       /* the last #PF address, to stop a livelock */
	unsigned repeat;
	struct vcpu_counts n;
};

/* Opens /dev/kvm, creates the VM, reads CPUID and XCR0, builds the IDT.
 * 0 or -errno with *why. */
int vm_create(struct vm *vm, int cpl, size_t stack_size, const char **why);
void vm_destroy(struct vm *vm);

/* Creates vCPU id with its system area and stack (which the owner must map
 * in the guest tables before the first call: vcpu_area_*). 0 or -errno. */
int vcpu_create(struct vm *vm, struct vcpu *v, int id, const char **why);
void vcpu_destroy(struct vcpu *v);

/* Runs fn(arg) in the guest: 0 and *ret, -EFAULT and *f, or -errno. */
int vcpu_call(struct vcpu *v, uint64_t fn, uint64_t arg, uint64_t *ret, struct kvmrt_fault *f);

/* Makes KVM flush the vCPU's guest TLB and paging-structure caches before
 * it next runs guest code: KVM_SET_SREGS with CR4.PGE toggled and back.
 * A CR4 change makes __set_sregs reset the MMU context and request
 * KVM_REQ_TLB_FLUSH_GUEST (arch/x86/kvm/x86.c), the flush a guest's own
 * CR4.PGE toggle gets, global entries included (docs/live-tables.md). Not
 * while the vCPU runs (its own thread, between runs). 0 or -errno. */
int vcpu_flush_tlb(struct vcpu *v);

/* Deletes a one-page scratch slot after creating it: on KVM's shadow MMU
 * (PVM here) that invalidates every shadow page of the VM
 * (KVM_X86_QUIRK_SLOT_ZAP_ALL, on by default), and KVM makes every vCPU
 * drop its roots before it re-enters. Slot id vm->max_slots - 1 and GPA
 * 0x1000 (below the physical map's reserved range) are kept for it. */
int vm_zap_shadow(struct vm *vm);
#define VM_SCRATCH_GPA 0x1000ull

/* The workload's privilege-dependent selectors. */
uint16_t vcpu_code_sel(const struct vm *vm);

/* Fills f with reason and a formatted why. */
void vcpu_fault_set(struct kvmrt_fault *f, enum kvmrt_reason reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
