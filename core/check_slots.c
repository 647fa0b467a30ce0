/* check_slots: DESIGN.md invariant 5 over the slot engine, plus the table
 * invariants of check_tables. Walks the real tables with the one walker and,
 * for every present leaf, asks the physical map what should be there. Takes
 * the slot lock, so it may run while vCPU threads fault (not from inside the
 * slot callback). Allocates nothing; not for the fault path (snprintf). */
#include "check.h"
#include "physmap.h"
#include "pt_internal.h"
#include "slots.h"
#include "slots_internal.h"

#include <inttypes.h>
#include <stdio.h>

struct cs_walk {
	const struct slots *s;
	char *buf;
	size_t len;
	struct phys_block last;  /* the last block that held, to skip lookups */
	uint32_t last_allowed;
	bool have_last;
};

static const char *cs_kind(enum region_kind k)
{
	static const char *const names[] = { "normal", "ro", "mmio", "excluded" };
	return (unsigned)k <= REGION_EXCLUDED ? names[k] : "?";
}

#define CS_ACCESS (PT_R | PT_W | PT_X)

/* The part of leaf [va, va+size) -> pa that lies in one fault block, from
 * va on: *step bytes of it. 0 when it holds, 1 with buf filled. */
static int cs_leaf_part(struct cs_walk *w, uint64_t leaf_va, uint64_t va, uint64_t pa, uint64_t size,
			uint32_t opts, uint64_t *step)
{
	const struct slots *s = w->s;
	struct phys_block b;
	uint64_t want;

	/* Leaves in a block already checked need only its translation and
	 * permissions again (a block lies in one region: one linear mapping). */
	if (w->have_last && va - w->last.va < w->last.len && pa == w->last.pa + (va - w->last.va) &&
	    !(opts & CS_ACCESS & ~w->last_allowed)) {
		*step = w->last.pa + w->last.len - pa;
		return 0;
	}
	if (physmap_translate(s->pm, va, &want)) {
		snprintf(w->buf, w->len, "slots: leaf va 0x%" PRIx64 " size 0x%" PRIx64 ": va 0x%" PRIx64
			 " is in no physical region", leaf_va, size, va);
		return 1;
	}
	if (want != pa) {
		snprintf(w->buf, w->len, "slots: leaf va 0x%" PRIx64 " size 0x%" PRIx64 ": va 0x%" PRIx64
			 " maps pa 0x%" PRIx64 ", the physical map says 0x%" PRIx64, leaf_va, size, va, pa, want);
		return 1;
	}
	physmap_fault_block(s->pm, pa, &b);   /* cannot fail: pa was just translated */
	if (b.kind != REGION_MMIO && !(s->flags & SLOTS_LEGACY) && slots_find(s, b.pa) < 0) {
		snprintf(w->buf, w->len, "slots: leaf va 0x%" PRIx64 " size 0x%" PRIx64 " lies in fault block pa 0x%"
			 PRIx64 " len 0x%" PRIx64 " (%s) that has no slot", leaf_va, size, b.pa, b.len, cs_kind(b.kind));
		return 1;
	}
	uint32_t allowed = slots_opts(s, b.kind) & CS_ACCESS;
	if (opts & CS_ACCESS & ~allowed) {
		char got[32], may[32];
		snprintf(w->buf, w->len, "slots: leaf va 0x%" PRIx64 " size 0x%" PRIx64 " is %s but its region va 0x%"
			 PRIx64 " (%s) allows %s", leaf_va, size, pt_opts_str(opts & CS_ACCESS, got),
			 s->pm->regions[b.region].va, cs_kind(b.kind), pt_opts_str(allowed, may));
		return 1;
	}
	w->last = b;
	w->last_allowed = allowed;
	w->have_last = true;
	*step = b.pa + b.len - pa;
	return 0;
}

/* A leaf may span several fault blocks (a 1 GiB leaf over 2 MiB blocks). */
static int cs_leaf(struct cs_walk *w, uint64_t pte, int level, uint64_t linear)
{
	const uint64_t size = pt_level_size(level);
	const uint64_t leaf_va = pt_canonical(w->s->pt, linear);
	const uint64_t leaf_pa = pte_addr(pte, level);
	const uint32_t opts = pte_leaf_opts(pte, level);

	for (uint64_t off = 0; off < size;) {
		uint64_t step;
		int ret = cs_leaf_part(w, leaf_va, leaf_va + off, leaf_pa + off, size, opts, &step);
		if (ret)
			return ret;
		off += step;
	}
	return 0;
}

static int cs_entry(void *priv, uint64_t *pte, int level, uint64_t addr, uint64_t next)
{
	uint64_t e = *pte;

	(void)next;
	if (!pte_present(e))
		return 0;
	if (pte_is_table(e, level))
		return PT_WALK_DESCEND;
	return cs_leaf(priv, e, level, addr & ~(pt_level_size(level) - 1));
}

/* Each slot is exactly one fault block of a kind that takes slots, with its
 * own id, found under its block in the index; since fault blocks are
 * disjoint, that also rules out overlapping slots and two slots per block. */
static const char *cs_slot(const struct slots *s, uint32_t i, char *buf, size_t len)
{
	const struct slot *sl = &s->table[i];
	struct phys_block b;
	int64_t found;

	if (sl->id != i) {
		snprintf(buf, len, "slots: slot %u holds id %u", i, sl->id);
		return buf;
	}
	if (physmap_fault_block(s->pm, sl->pa, &b) || b.pa != sl->pa || b.len != sl->len || b.va != sl->va) {
		snprintf(buf, len, "slots: slot %u (pa 0x%" PRIx64 " len 0x%" PRIx64 " va 0x%" PRIx64
			 ") is not a fault block of the physical map", i, sl->pa, sl->len, sl->va);
		return buf;
	}
	if (b.kind == REGION_MMIO || sl->readonly != (b.kind == REGION_RO)) {
		snprintf(buf, len, "slots: slot %u (pa 0x%" PRIx64 " len 0x%" PRIx64 ") readonly=%d on a %s block",
			 i, sl->pa, sl->len, sl->readonly, cs_kind(b.kind));
		return buf;
	}
	found = slots_find(s, sl->pa);
	if (found != (int64_t)i) {
		snprintf(buf, len, "slots: slots %u and %" PRId64 " both cover fault block pa 0x%" PRIx64 " len 0x%" PRIx64,
			 i, found, sl->pa, sl->len);
		return buf;
	}
	return NULL;
}

static const char *cs_slots(const struct slots *s, char *buf, size_t len)
{
	uint32_t count = __atomic_load_n(&s->count, __ATOMIC_ACQUIRE), indexed = 0;
	const char *bad = NULL;

	if (count > s->capacity) {
		snprintf(buf, len, "slots: count %u above capacity %u", count, s->capacity);
		return buf;
	}
	for (uint32_t i = 0; i < count && !bad; i++)
		bad = cs_slot(s, i, buf, len);
	if (bad)
		return bad;
	for (uint32_t h = 0; h <= s->index_mask; h++)
		indexed += __atomic_load_n(&s->index[h], __ATOMIC_ACQUIRE) != 0;
	if (indexed != count) {
		snprintf(buf, len, "slots: %u slots but %u index entries", count, indexed);
		return buf;
	}
	return NULL;
}

static const char *cs_run(const struct slots *s, char *buf, size_t len)
{
	const struct pt *pt = s->pt;
	const struct pt_walk_ops ops = { .entry = cs_entry, .skip_holes = true };
	struct cs_walk w = { .s = s, .buf = buf, .len = len };
	const char *bad = check_tables(pt, NULL, 0, buf, len);

	if (bad)
		return bad;
	bad = cs_slots(s, buf, len);
	if (bad)
		return bad;
	if (pt_walk(pt, 0, 1ull << (PT_PAGE_SHIFT + 9u * (unsigned)pt->levels), &ops, &w))
		return buf;
	return NULL;
}

const char *check_slots(const struct slots *s, char *buf, size_t len)
{
	struct slots *ms = (struct slots *)s;   /* the lock word only */
	sigset_t old;
	const char *bad;

	if (!len)
		return "slots: no room for the report";
	slots_lock(ms, &old);
	bad = cs_run(s, buf, len);
	slots_unlock(ms, &old);
	return bad;
}
