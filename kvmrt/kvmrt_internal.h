/* kvmrt internals shared by kvmrt.c, the command, the benchmark, the tests
 * and fuzz_kvm. */
#ifndef KVMRT_INTERNAL_H
#define KVMRT_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "kvmrt.h"
#include "physmap.h"
#include "pool.h"
#include "pt.h"
#include "shootdown.h"
#include "slots.h"
#include "vcpu.h"

/* The signal that kicks a vCPU thread out of KVM_RUN for a shootdown. */
#define KVMRT_KICK_SIGNAL (SIGRTMIN + 2)

struct kvmrt {
	struct kvmrt_config cfg;
	uint64_t gen;                 /* tells this runtime from an earlier one at the same address */
	bool check;
	bool huge_1g;
	bool readonly_slots;          /* KVM_CAP_READONLY_MEM */
	bool pt_ready, slots_ready;
	bool mmio_noslot;             /* bench: serve MMIO exits without adding the slot */
	struct vm vm;
	struct region *host;          /* /proc/self/maps at open, sorted */
	size_t nhost;
	struct phys_region *phys;
	struct physmap pm;
	uint64_t bound;               /* table pages: the pool's capacity */
	void *pool_mem;
	size_t pool_len;
	uint64_t pool_pa;
	struct pool pool;
	struct pt pt;
	struct slots slots;
	struct vcpu *vcpus;           /* cfg.max_vcpus entries, nvcpus created */
	/* Live tables, per vCPU (index = id): the flush-point protocol, the
	 * thread running it (for kicks) and a flag that keeps that thread from
	 * leaving the call while a kick is being sent to it. */
	struct sd_cpu *sd;
	pthread_t *runner;
	_Atomic int *kicking;
	pthread_mutex_t shootdown_lock;  /* one shootdown at a time */
	_Atomic uint64_t shootdowns, reclaimed, kicks;
	_Atomic unsigned nvcpus;
	pthread_mutex_t vcpu_lock;    /* vCPU creation only */
	/* fuzz_kvm: outs to user ports other than DONE/NOP */
	int (*port_hook)(void *ctx, struct vcpu *v, uint16_t port, uint32_t value, struct kvmrt_fault *f);
	void *port_ctx;
	_Atomic uint64_t slot_ioctls, slot_ns, new_slots_pf, new_slots_mmio, checks;
	atomic_bool check_failed;
	char check_why[320];
	bool ckpt_set;                /* kvmrt_checkpoint was called */
	uint32_t ckpt_slots;          /* slots.count at the checkpoint */
	uint64_t ckpt_mmio;           /* slots.mmio_blocks at the checkpoint */
};

/* Is every page of [va, va+len) mapped in this process (mincore)?
 * Async-signal-safe, no allocation. */
bool kvmrt_host_mapped(uint64_t va, uint64_t len);

/* The #PF service as the exit loop runs it: refuses protection and
 * reserved-bit faults (-EACCES) and host-unmapped pages (-EFAULT), else
 * slots_fault. Async-signal-safe, no allocation: tests run it from a signal
 * handler on a small sigaltstack. */
int kvmrt_service_fault(struct kvmrt *rt, uint64_t va, uint64_t err, struct slots_result *res);

/* Deletes every slot and rebuilds the tables as at open (fuzz_kvm: each
 * input starts from the same state). No vCPU may be running. */
int kvmrt_reset(struct kvmrt *rt, char *why, size_t why_len);

/* Remembers the slot state now (fuzz_kvm: after a warm-up call has slotted
 * code, stack and data), so that kvmrt_rollback can return to it. */
void kvmrt_checkpoint(struct kvmrt *rt);

/* Back to the checkpoint, cheaply: deletes, newest first, every slot made
 * since (one KVM ioctl each), takes it out of the slot index and unmaps its
 * block's entries (lazy mode; canonical form makes the tables exactly those
 * of the checkpoint), and forgets the vCPUs' #PF repeat counters. Returns
 * -EBUSY when it cannot (no checkpoint, or mmio blocks got entries since):
 * use kvmrt_reset then. No vCPU may be running. Reports how many slots it
 * deleted in *deleted (may be NULL). */
int kvmrt_rollback(struct kvmrt *rt, uint32_t *deleted, char *why, size_t why_len);

/* Makes every vCPU flush before it runs guest code again (shootdown.h),
 * then gives back the table pages retired before; counts both. Not from a
 * fault path. Returns the pages reclaimed. */
uint32_t kvmrt_shootdown(struct kvmrt *rt);

/* Slots and entries for every block [va, va+len) touches. */
int kvmrt_map_range(struct kvmrt *rt, uint64_t va, uint64_t len);

#endif
