/* The slot engine: gives fault blocks table entries and a KVM memory slot on
 * demand, from vCPU threads and signal handlers, with no allocation after
 * init.
 *
 * Concurrency. Writers (slots_map_physical) serialise on one spin lock that
 * is taken with every signal blocked (pthread_sigmask). Why that is enough:
 * - a handler can interrupt a thread only while signals are unblocked, so it
 *   can never spin on a lock its own thread holds (no self-deadlock), and
 *   the holder is never suspended mid-update by one of our own handlers;
 * - the critical section is bounded (table writes from the preallocated pool
 *   plus one callback, KVM_SET_USER_MEMORY_REGION, 17-27 us here), so other
 *   threads spin briefly; KVM-NOTES.md says to serialise slot creation in user
 *   space anyway (colliding creates cost 0.4-1.5 ms each);
 * - synchronous faults (SIGSEGV/SIGBUS) inside the section cannot be blocked;
 *   if one happens the process dies, which is right: it is a bug.
 * A mutex would do the first two only with PTHREAD_MUTEX_ERRORCHECK games, and
 * pthread_mutex_lock is not async-signal-safe.
 *
 * Readers (slots_has_slot, the fast path of map_physical) take no lock: the
 * slot entry is filled in completely, then its id is stored into the index
 * with release; readers load the index with acquire before touching the
 * entry. Slots are never removed, so an entry, once seen, stays valid. */
#include "slots.h"
#include "slots_internal.h"

#include "physmap.h"
#include "pool.h"
#include "pt.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

static inline void slots_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

void slots_lock(struct slots *s, sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, old);
	while (__atomic_exchange_n(&s->lock, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&s->lock, __ATOMIC_RELAXED))
			slots_pause();
}

void slots_unlock(struct slots *s, const sigset_t *old)
{
	__atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* Fibonacci hashing of the block's page number. */
static uint32_t slots_hash(const struct slots *s, uint64_t block_pa)
{
	return (uint32_t)(((block_pa >> 12) * 0x9e3779b97f4a7c15ull) >> 32) & s->index_mask;
}

int64_t slots_find(const struct slots *s, uint64_t block_pa)
{
	for (uint32_t h = slots_hash(s, block_pa);; h = (h + 1) & s->index_mask) {
		uint32_t v = __atomic_load_n(&s->index[h], __ATOMIC_ACQUIRE);
		if (!v)
			return -1;
		if (s->table[v - 1].pa == block_pa)
			return v - 1;
	}
}

/* Caller holds the lock; the index has at least capacity free entries, so
 * the probe ends. */
static void slots_publish(struct slots *s, const struct phys_block *b, uint32_t id)
{
	uint32_t h = slots_hash(s, b->pa);

	s->table[id] = (struct slot){ .pa = b->pa, .len = b->len, .va = b->va, .id = id,
				      .readonly = b->kind == REGION_RO };
	while (__atomic_load_n(&s->index[h], __ATOMIC_RELAXED))
		h = (h + 1) & s->index_mask;
	__atomic_store_n(&s->index[h], id + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&s->count, id + 1, __ATOMIC_RELEASE);
}

uint32_t slots_opts(const struct slots *s, enum region_kind kind)
{
	uint32_t opts = PT_R;

	if (kind == REGION_NORMAL || kind == REGION_MMIO)
		opts |= PT_W;
	else if (s->flags & SLOTS_EXEC)
		opts |= PT_X;
	if (s->flags & SLOTS_USER)
		opts |= PT_USER;
	return opts;
}

/* Legacy: every physical region's entries now; undone on failure. */
static int slots_map_all(struct slots *s)
{
	const struct physmap *pm = s->pm;
	int err = 0;
	size_t i;

	for (i = 0; i < pm->count && !err; i++) {
		const struct phys_region *r = &pm->regions[i];
		err = pt_map(s->pt, r->va, r->len, r->pa, slots_opts(s, r->kind));
	}
	if (err)
		for (size_t j = 0; j + 1 < i; j++)
			pt_unmap(s->pt, pm->regions[j].va, pm->regions[j].len);
	return err;
}

int slots_init(struct slots *s, struct pt *pt, const struct physmap *pm, uint32_t capacity,
	       unsigned flags, slots_set_fn set, void *ctx)
{
	uint32_t entries = 1;
	int err;

	if (!s || !pt || !pm || !set || !capacity || capacity > SLOTS_MAX_CAPACITY ||
	    (flags & ~SLOTS_FLAGS_ALL))
		return -EINVAL;
	/* At most half full, so probes stay short and always end. */
	while (entries < 2 * capacity)
		entries <<= 1;
	*s = (struct slots){ .pt = pt, .pm = pm, .capacity = capacity, .flags = flags,
			     .set = set, .ctx = ctx, .index_mask = entries - 1 };
	s->table = calloc(capacity, sizeof(*s->table));
	s->index = calloc(entries, sizeof(*s->index));
	if (!s->table || !s->index) {
		err = -ENOMEM;
		goto out;
	}
	err = flags & SLOTS_LEGACY ? slots_map_all(s) : 0;
out:
	if (err)
		slots_destroy(s);
	return err;
}

void slots_destroy(struct slots *s)
{
	free(s->table);
	free(s->index);
	s->table = NULL;
	s->index = NULL;
	s->capacity = 0;
	s->count = 0;
}

/* mmio: entries and no slot, so the guest's access exits as KVM_EXIT_MMIO.
 * Says SLOTS_ALREADY when the entries are there (legacy: always). Caller
 * holds the lock. */
static int slots_map_mmio(struct slots *s, const struct phys_block *b, struct slots_result *r)
{
	struct pt_leaf leaf;
	int err;

	if ((s->flags & SLOTS_LEGACY) || pt_lookup(s->pt, b->va, &leaf) == 0) {
		r->outcome = SLOTS_ALREADY;
		return 0;
	}
	r->outcome = SLOTS_MMIO;
	err = pt_map(s->pt, b->va, b->len, b->pa, slots_opts(s, b->kind));
	if (!err)
		s->mmio_blocks++;
	return err;
}

/* The slot, then the entries; caller holds the lock. In that order because
 * other vCPUs run while we work: an entry written before its slot exists
 * turns their access into an MMIO exit (emulated, or an emulation failure
 * for xsave/AVX/cmpxchg16b; kvmrt's lock-xadd scenario caught exactly
 * that). With the slot first they take a #PF, find the lock held, wait, and
 * see the block as already done. To keep "nothing half-done", everything that
 * could make the table writes fail (bad arguments, too few free pool pages)
 * is checked before the callback, so after a successful callback pt_map
 * cannot fail; should it anyway (a broken bound), the slot stays in KVM
 * unpublished and the same id is offered again, which KVM takes for an
 * identical slot. */
static int slots_create(struct slots *s, const struct phys_block *b, struct slots_result *r)
{
	const bool legacy = s->flags & SLOTS_LEGACY;
	const uint32_t opts = slots_opts(s, b->kind);
	int64_t found = slots_find(s, b->pa);
	uint32_t id = s->count, cost = 0;
	int err;

	if (found >= 0) {
		r->outcome = SLOTS_ALREADY;
		r->slot = (uint32_t)found;
		return 0;
	}
	if (id == s->capacity)
		return -ENOSPC;
	if (!legacy) {
		err = pt_map_cost(s->pt, b->va, b->len, b->pa, opts, &cost);
		if (err)
			return err;
		if (cost > pool_free(s->pt->pool))
			return -ENOMEM;
	}
	err = s->set(s->ctx, id, b->pa, b->len, b->va, b->kind == REGION_RO);
	/* Our lock serialises our own creates, so EEXIST means a slot for this
	 * range was made outside this table (another thread going to the VM
	 * directly, a retried ioctl that had succeeded): the block is backed,
	 * which is what we wanted. */
	if (err && err != -EEXIST)
		return err;
	if (!legacy) {
		err = pt_map(s->pt, b->va, b->len, b->pa, opts);
		if (err)
			return err;
	}
	slots_publish(s, b, id);
	r->outcome = SLOTS_NEW;
	r->slot = id;
	return 0;
}

static int slots_map_block(struct slots *s, const struct phys_block *b, struct slots_result *r)
{
	sigset_t old;
	int err;

	r->pa = b->pa;
	r->len = b->len;
	r->slot = 0;
	if (b->kind != REGION_MMIO) {
		int64_t found = slots_find(s, b->pa);   /* fast path, no lock */
		if (found >= 0) {
			r->outcome = SLOTS_ALREADY;
			r->slot = (uint32_t)found;
			return 0;
		}
	}
	slots_lock(s, &old);
	if (b->kind == REGION_MMIO) {
		err = slots_map_mmio(s, b, r);
	} else {
		err = slots_create(s, b, r);
	}
	slots_unlock(s, &old);
	return err;
}

int slots_map_physical(struct slots *s, uint64_t pa, uint64_t len, struct slots_result *last)
{
	struct slots_result scratch;
	uint64_t end = pa + len;

	if (!last)
		last = &scratch;
	if (!len || end < pa)
		return -EINVAL;
	while (pa < end) {
		struct phys_block b;
		int err = physmap_fault_block(s->pm, pa, &b);
		if (!err)
			err = slots_map_block(s, &b, last);
		if (err)
			return err;
		pa = b.pa + b.len;
	}
	return 0;
}

int slots_fault(struct slots *s, uint64_t va, struct slots_result *r)
{
	uint64_t pa;
	int err = physmap_translate(s->pm, va, &pa);

	if (err)
		return err;
	return slots_map_physical(s, pa, 1, r);
}

/* The index cell that holds slot id. */
static uint32_t slots_cell(const struct slots *s, uint32_t id)
{
	uint32_t h = slots_hash(s, s->table[id].pa);
	while (__atomic_load_n(&s->index[h], __ATOMIC_RELAXED) != id + 1)
		h = (h + 1) & s->index_mask;
	return h;
}

int slots_truncate(struct slots *s, uint32_t keep)
{
	if (keep > s->count)
		return -EINVAL;
	/* Newest first: with linear probing, emptying cells in the reverse
	 * order of insertion leaves exactly the index the first `keep` built. */
	while (s->count > keep) {
		uint32_t id = s->count - 1;
		const struct slot *sl = &s->table[id];
		/* Entries first, then the slot (the mirror of slots_create): a
		 * failure leaves a slot without entries, never entries without
		 * a slot, and nothing half-undone. */
		if (!(s->flags & SLOTS_LEGACY)) {
			int err = pt_unmap(s->pt, sl->va, sl->len);
			if (err)
				return err;
		}
		int err = s->set(s->ctx, id, sl->pa, 0, sl->va, sl->readonly);
		if (err)
			return err;
		__atomic_store_n(&s->index[slots_cell(s, id)], 0, __ATOMIC_RELEASE);
		__atomic_store_n(&s->count, id, __ATOMIC_RELEASE);
	}
	return 0;
}

bool slots_has_slot(const struct slots *s, uint64_t pa)
{
	struct phys_block b;

	if (physmap_fault_block(s->pm, pa, &b))
		return false;
	return slots_find(s, b.pa) >= 0;
}
