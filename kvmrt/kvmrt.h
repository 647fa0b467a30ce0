/* kvmrt: runs host C functions inside a KVM guest at their own addresses.
 * The guest's page tables come from the kvmpt engine; memory slots are added
 * one fault block at a time when the guest takes a #PF (or, in legacy mode, an
 * MMIO exit). Workloads run at CPL3 by default, natively on every backend. */
#ifndef KVMRT_H
#define KVMRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvmrt;

struct kvmrt_config {
	bool legacy;          /* tables for everything at init, slots lazy (MMIO exits) */
	bool check;           /* run check_slots after every mapping change and at close */
	bool ring0;           /* workloads at CPL0; default (false) CPL3 */
	unsigned max_vcpus;   /* vCPUs created on demand up to this; 0: 16 */
	uint64_t block_size;  /* fault block size; 0: the physical map's default */
	size_t stack_size;    /* guest stack per vCPU; 0: 1 MiB */
	bool quiet;           /* no "kvmrt: backend ..." line on open */
	bool full_va;         /* map the whole lower half; default: holes over 2 TiB
			       * are excluded except 1 TiB next to each mapping */
};

enum kvmrt_reason {
	KVMRT_OK = 0,
	KVMRT_PAGE_FAULT,     /* #PF kvmrt could not service (host-unmapped, protection) */
	KVMRT_EXCEPTION,      /* another exception: vector, error code, rip */
	KVMRT_SYSCALL,        /* guest executed syscall: addr = rax (the number) */
	KVMRT_EFAULT,         /* KVM_RUN failed with EFAULT (slot over unmapped host memory) */
	KVMRT_EMULATION,      /* KVM_EXIT_INTERNAL_ERROR: insn bytes when KVM gave them */
	KVMRT_SHUTDOWN,       /* triple fault */
	KVMRT_MMIO,           /* MMIO exit kvmrt could not serve */
	KVMRT_TIMEOUT,        /* the call ran longer than its limit */
	KVMRT_HOST_ERROR,     /* an ioctl or the engine failed: err, why */
};

/* What stopped a guest call when it did not return. */
struct kvmrt_fault {
	enum kvmrt_reason reason;
	int vector;            /* exception vector, -1 when none */
	uint64_t addr;         /* CR2 for #PF, GPA->VA for MMIO, rax for syscall */
	uint64_t error_code;
	uint64_t rip;
	int err;               /* -errno for EFAULT / HOST_ERROR, engine error for #PF */
	uint32_t suberror;     /* KVM_EXIT_INTERNAL_ERROR suberror */
	uint8_t insn[16];      /* instruction bytes of an emulation failure */
	uint32_t insn_len;
	char why[160];
};

struct kvmrt_exits {
	uint64_t mmio, pf, io, internal, other;
	uint64_t shootdowns;   /* kvmrt_unmap / kvmrt_protect / reclaims that made every vCPU flush */
	uint64_t reclaimed;    /* retired table pages given back to the pool after a shootdown */
};

typedef uint64_t (*kvmrt_fn)(uint64_t arg);

/* Opens /dev/kvm and builds the VM. 0, or -errno with a message in why. */
int kvmrt_open(struct kvmrt **rt, const struct kvmrt_config *cfg, char *why, size_t why_len);

/* Reports check failures found at close in why (if any); frees everything.
 * 0, or -EFAULT when the final check failed. */
int kvmrt_close(struct kvmrt *rt, char *why, size_t why_len);

/* Runs fn(arg) in the guest on a vCPU of the calling thread, with the
 * thread's FS base. 0 and *ret; -EFAULT and *fault when the guest did not
 * return (fault->reason says why); other -errno for host failures (also
 * described in *fault). fault may be NULL. */
int kvmrt_call(struct kvmrt *rt, kvmrt_fn fn, uint64_t arg, uint64_t *ret, struct kvmrt_fault *fault);

/* Live tables (docs/live-tables.md). The host unmapped or mprotected
 * [va, va+len) (page-aligned) and the guest must follow: the table entries
 * go (unmap) or lose rights (protect: perms is PT_R with PT_W or PT_X from
 * core/pt.h, never more than the region allows; pages without entries stay
 * without, and a block first faulted later gets the permissions its region
 * had at kvmrt_open), then every vCPU that runs guest code is kicked out (signal +
 * immediate_exit) and flushes before it runs guest code again, and only then
 * are the table pages the change freed reused. When it returns, no vCPU can
 * use an old translation. A later guest access to an unmapped page comes
 * back as a KVMRT_PAGE_FAULT record. Not from a fault path (it waits for the
 * vCPUs); any thread otherwise. 0, -EINVAL, or the engine's error. */
int kvmrt_unmap(struct kvmrt *rt, uint64_t va, uint64_t len);
int kvmrt_protect(struct kvmrt *rt, uint64_t va, uint64_t len, unsigned perms);

/* Exit counters summed over every vCPU. */
void kvmrt_exits(struct kvmrt *rt, struct kvmrt_exits *e);

/* Which backend serves /dev/kvm, as a human string. */
const char *kvmrt_backend(const struct kvmrt *rt);

/* Describes f on one line into buf. */
const char *kvmrt_fault_str(const struct kvmrt_fault *f, char *buf, size_t len);

/* Prints "exits: mmio=N pf=N io=N internal=N other=N shootdowns=N
 * reclaimed=N" into buf. */
const char *kvmrt_exits_str(const struct kvmrt_exits *e, char *buf, size_t len);

/* Guest helpers (callable from a guest function): a bare exit to the host
 * (port I/O that kvmrt counts and ignores), for benchmarks. */
void kvmrt_guest_nop_exit(void);

/* Number of memory slots in use, and runs the checker now: NULL when every
 * invariant holds, else the first broken one in buf. */
uint32_t kvmrt_slot_count(struct kvmrt *rt);
const char *kvmrt_check(struct kvmrt *rt, char *buf, size_t len);

#endif
