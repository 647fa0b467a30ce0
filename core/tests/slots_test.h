/* Test helpers for the slot engine (header-only: core/tests/build.mk links
 * each test with t.o and the library only).
 * - recorder: a slot callback with KVM's semantics from KVM-NOTES.md:
 *   misaligned gpa/size/hva, an id at or above KVM_CAP_NR_MEMSLOTS, or an
 *   existing id with other parameters -> EINVAL; same id, same parameters ->
 *   0; an overlap with another id -> EEXIST. Not locked: the engine must
 *   serialise its calls (the thread test runs under TSan to prove it).
 * - slot_env: a physical map, a pool sized by the bound, tables, slots. */
#ifndef KVMPT_SLOTS_TEST_H
#define KVMPT_SLOTS_TEST_H

#include "physmap.h"
#include "pool.h"
#include "pt.h"
#include "slots.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORDER_NR_SLOTS 32764u   /* KVM_CAP_NR_MEMSLOTS here */

struct recorder_slot {
	uint64_t gpa, size, hva;
	bool used, readonly;
};

struct recorder {
	struct recorder_slot slot[RECORDER_NR_SLOTS];
	uint32_t ids[RECORDER_NR_SLOTS];   /* used ids, in creation order */
	uint32_t count;
	uint64_t calls;
	uint64_t eexist;                   /* EEXIST answers given */
	int fail_next;                     /* answer the next call with this */
};

static inline void recorder_reset(struct recorder *r)
{
	memset(r, 0, sizeof(*r));
}

static inline int recorder_set(void *ctx, uint32_t id, uint64_t pa, uint64_t len, uint64_t va, bool ro)
{
	struct recorder *r = ctx;

	r->calls++;
	if (r->fail_next) {
		int err = r->fail_next;
		r->fail_next = 0;
		return err;
	}
	if (id >= RECORDER_NR_SLOTS || !len || ((pa | len | va) & 0xfff))
		return -EINVAL;
	if (r->slot[id].used) {
		const struct recorder_slot *s = &r->slot[id];
		return s->gpa == pa && s->size == len && s->hva == va ? 0 : -EINVAL;
	}
	for (uint32_t i = 0; i < r->count; i++) {
		const struct recorder_slot *s = &r->slot[r->ids[i]];
		if (pa < s->gpa + s->size && s->gpa < pa + len) {
			r->eexist++;
			return -EEXIST;
		}
	}
	r->slot[id] = (struct recorder_slot){ .gpa = pa, .size = len, .hva = va, .used = true, .readonly = ro };
	r->ids[r->count++] = id;
	return 0;
}

/* Every engine slot is backed by a recorder slot with the same block. */
static inline int recorder_verify(const struct recorder *r, const struct slots *s)
{
	for (uint32_t i = 0; i < s->count; i++) {
		const struct slot *e = &s->table[i];
		const struct recorder_slot *k = &r->slot[i];
		if (k->used && k->gpa == e->pa && k->size == e->len && k->hva == e->va && k->readonly == e->readonly)
			continue;
		bool found = false;
		for (uint32_t j = 0; j < r->count && !found; j++) {
			k = &r->slot[r->ids[j]];
			found = k->gpa == e->pa && k->size == e->len && k->hva == e->va;
		}
		if (!found) {
			fprintf(stderr, "recorder: engine slot %u (pa 0x%llx len 0x%llx va 0x%llx) not in KVM\n", i,
				(unsigned long long)e->pa, (unsigned long long)e->len, (unsigned long long)e->va);
			return -1;
		}
	}
	return 0;
}

struct slot_env {
	struct physmap pm;
	struct region *sorted;
	struct phys_region *phys;
	struct pool pool;
	struct pt pt;
	struct slots slots;
	uint64_t bound;
};

/* Physical map from host (cfg may be NULL), a pool of exactly the bound of
 * the mode, 4-level tables with 1 GiB leaves, slots. 0 or -errno. */
static inline int env_init(struct slot_env *e, const struct physmap_config *cfg, const struct region *host, size_t n,
			   unsigned flags, uint32_t capacity, slots_set_fn set, void *ctx)
{
	const char *why = NULL;
	size_t cap = 2 * n + 2;
	int err;

	memset(e, 0, sizeof(*e));
	e->sorted = calloc(n ? n : 1, sizeof(*e->sorted));
	e->phys = calloc(cap, sizeof(*e->phys));
	if (!e->sorted || !e->phys)
		return -ENOMEM;
	err = physmap_build(&e->pm, cfg, host, n, e->sorted, e->phys, cap, &why);
	if (err) {
		fprintf(stderr, "env: physmap_build %d: %s\n", err, why ? why : "");
		return err;
	}
	err = physmap_bound(&e->pm, flags & SLOTS_LEGACY, 4, true, &e->bound);
	if (!err)
		err = pool_init_mmap(&e->pool, (uint32_t)e->bound, 1ull << 40);
	if (!err)
		err = pt_init(&e->pt, &e->pool, 4, true);
	if (!err)
		err = slots_init(&e->slots, &e->pt, &e->pm, capacity, flags, set, ctx);
	if (err)
		fprintf(stderr, "env: init %d (bound %llu)\n", err, (unsigned long long)e->bound);
	return err;
}

static inline void env_destroy(struct slot_env *e)
{
	slots_destroy(&e->slots);
	pt_destroy(&e->pt);
	pool_destroy(&e->pool);
	free(e->sorted);
	free(e->phys);
}

#endif
