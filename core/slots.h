/* The slot engine: maps fault blocks into the VM on demand. For each block
 * with no slot yet it asks the slot callback (kvmrt:
 * KVM_SET_USER_MEMORY_REGION) to create the slot, then writes the block's
 * table entries. Never a present entry without a slot (not even for a
 * moment: other vCPUs run meanwhile). No allocation after init; safe to call from
 * several vCPU threads and from a signal handler. */
#ifndef KVMPT_SLOTS_H
#define KVMPT_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pt;
struct physmap;

/* Creates slot `id` mapping [pa, pa+len) to host va. 0 or -errno with KVM's
 * meaning (-EEXIST: an overlapping slot exists). */
typedef int (*slots_set_fn)(void *ctx, uint32_t id, uint64_t pa, uint64_t len, uint64_t va, bool readonly);

struct slot {
	uint64_t pa;
	uint64_t len;
	uint64_t va;
	uint32_t id;
	bool readonly;
};

#define SLOTS_USER   0x1u   /* table entries get the user bit */
#define SLOTS_LEGACY 0x2u   /* entries for every region built at init */
#define SLOTS_EXEC   0x4u   /* read-only regions mapped rx instead of r, so that
			     * host code (r-x in /proc/self/maps) runs in the
			     * guest; w+x is never made */
#define SLOTS_FLAGS_ALL 0x7u

struct slots {
	struct pt *pt;
	const struct physmap *pm;
	struct slot *table;        /* capacity entries, allocated at init */
	uint32_t *index;           /* open-addressed hash of block pa -> slot id + 1
				    * (0: empty), index_mask + 1 entries; entries
				    * are stored with release once the slot is
				    * complete, read with acquire: lock-free lookup */
	uint32_t index_mask;
	uint32_t capacity;
	uint32_t count;            /* published with release; read with acquire */
	unsigned flags;
	slots_set_fn set;
	void *ctx;
	int lock;                  /* spin lock taken with signals blocked */
	uint64_t mmio_blocks;      /* mmio blocks given entries */
};

#define SLOTS_MAX_CAPACITY (1u << 24)

enum slots_outcome { SLOTS_NEW = 1, SLOTS_MMIO, SLOTS_ALREADY };

struct slots_result {
	enum slots_outcome outcome;
	uint32_t slot;             /* SLOTS_NEW / SLOTS_ALREADY */
	uint64_t pa;               /* the block */
	uint64_t len;
};

/* Allocates the slot table; legacy: maps every physical region now (the pool
 * must then hold physmap_bound(legacy)). capacity: 1 .. SLOTS_MAX_CAPACITY
 * (KVM here takes 32764). 0, -EINVAL, -ENOMEM. */
int slots_init(struct slots *s, struct pt *pt, const struct physmap *pm, uint32_t capacity,
	       unsigned flags, slots_set_fn set, void *ctx);
void slots_destroy(struct slots *s);

/* Gives every fault block in [pa, pa+len) a slot and table entries (mmio
 * blocks: entries only). *last (may be NULL) describes the last block
 * handled. 0, -EINVAL (len 0 or wrap), -EFAULT (a part outside the map),
 * -ENOSPC (slot table full), -ENOMEM (pool), or the callback's error
 * (-EEXIST counts as success: the slot is there); on error the failing block
 * is left without entries (and, except for a failing callback, without a
 * callback call), blocks before it keep theirs. */
int slots_map_physical(struct slots *s, uint64_t pa, uint64_t len, struct slots_result *last);

/* Services a fault at va as kvmrt does: va -> pa -> its block. */
int slots_fault(struct slots *s, uint64_t va, struct slots_result *r);

/* Undoes every slot created after the first `keep`, newest first: the
 * callback deletes each (len 0, as KVM deletes a slot), then its block's
 * entries go. For fuzzers and tests that reset a VM between inputs: no
 * other thread may use `s` meanwhile (the lock-free readers assume slots are
 * never removed). 0, -EINVAL (keep > count), or the first error. */
int slots_truncate(struct slots *s, uint32_t keep);

/* Has the block holding pa a slot? Lock-free, async-signal-safe. */
bool slots_has_slot(const struct slots *s, uint64_t pa);

#endif
