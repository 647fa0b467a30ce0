/* The vCPU TLB / paging-structure-cache model (tlb.h). It reads the real
 * tables the way the CPU does (present, PS, the address in each entry) and
 * asks the pool whether a page it could still reach is retired. */
#include "tlb.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "pool.h"
#include "pt_internal.h"

#define RIGHTS (PT_R | PT_W | PT_X | PT_USER)
#define MEMTYPE (PT_WC | PT_UC)

int tlb_init(struct tlb *t, const struct pt *pt, unsigned nvcpus)
{
	if (!pt || nvcpus == 0 || nvcpus > TLB_MAX_VCPUS)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	t->pt = pt;
	t->nvcpus = nvcpus;
	return 0;
}

void tlb_flush(struct tlb *t, unsigned v)
{
	if (v >= t->nvcpus)
		return;
	struct tlb_vcpu *c = &t->vcpu[v];
	c->nptr = c->ntr = c->next_ptr = c->next_tr = 0;
	c->flushes++;
}

uint32_t tlb_flush_point(struct tlb *t, unsigned v)
{
	if (v >= t->nvcpus)
		return 0;
	struct pool *pool = t->pt->pool;
	tlb_flush(t, v);
	t->flushed[v] = pool_epoch_advance(pool);
	uint64_t safe = t->flushed[0];
	for (unsigned i = 1; i < t->nvcpus; i++)
		if (t->flushed[i] < safe)
			safe = t->flushed[i];
	return pool_reclaim(pool, safe);
}

void tlb_flush_all(struct tlb *t)
{
	for (unsigned v = 0; v < t->nvcpus; v++)
		tlb_flush(t, v);
}

static void cache_ptr(struct tlb_vcpu *c, uint64_t va, int level, uint64_t table_pa)
{
	for (unsigned i = 0; i < c->nptr; i++)
		if (c->ptr[i].va == va && c->ptr[i].level == level && c->ptr[i].table_pa == table_pa)
			return;
	unsigned slot = c->nptr < TLB_PTRS ? c->nptr++ : c->next_ptr++ % TLB_PTRS;
	c->ptr[slot] = (struct tlb_ptr){ .va = va, .table_pa = table_pa, .level = level };
}

static void cache_tr(struct tlb_vcpu *c, const struct tlb_tr *tr)
{
	for (unsigned i = 0; i < c->ntr; i++)
		if (c->tr[i].va == tr->va) {
			c->tr[i] = *tr;
			return;
		}
	unsigned slot = c->ntr < TLB_TRS ? c->ntr++ : c->next_tr++ % TLB_TRS;
	c->tr[slot] = *tr;
}

/* Does the level-`level` entry for linear va point at table_pa in the
 * tables as they are now? */
static bool ptr_live(const struct pt *pt, uint64_t lin, int level, uint64_t table_pa)
{
	const uint64_t *table = pt->root;
	for (int l = pt->levels - 1; l >= level && table; l--) {
		uint64_t pte = table[pt_index(lin, l)];
		if (!pte_is_table(pte, l))
			return false;
		if (l == level)
			return pte_addr(pte, l) == table_pa;
		table = pt_child(pt, pte);
	}
	return false;
}

/* The tables rule for one cached pointer: NULL or a description in buf. */
static const char *ptr_check(const struct tlb *t, unsigned v, const struct tlb_ptr *p, char *buf, size_t len)
{
	const struct pt *pt = t->pt;
	if (ptr_live(pt, p->va, p->level, p->table_pa) || pool_pa_retired(pt->pool, p->table_pa))
		return NULL;
	bool used = pool_pa_in_use(pt->pool, p->table_pa);
	snprintf(buf, len,
		 "tlb: vcpu %u may still walk table page 0x%" PRIx64 " (its level-%d entry for va 0x%" PRIx64
		 " pointed there since its last flush), but the pool %s without waiting for that vcpu's flush",
		 v, p->table_pa, p->level, pt_canonical(pt, p->va),
		 used ? "reused the page (in use, not retired)" : "freed the page");
	return buf;
}

/* The translations rule for one cached translation. */
static const char *tr_check(const struct tlb *t, unsigned v, const struct tlb_tr *tr, char *buf, size_t len)
{
	const struct pt *pt = t->pt;
	struct pt_leaf leaf;
	uint64_t va = pt_canonical(pt, tr->va);
	int rc = pt_lookup(pt, va, &leaf);
	uint64_t pa = rc ? 0 : leaf.pa + (va - leaf.va);
	if (!rc && pa == tr->pa && !(tr->opts & RIGHTS & ~leaf.opts) && (tr->opts & MEMTYPE) == (leaf.opts & MEMTYPE))
		return NULL;
	char was[32], now[32];
	pt_opts_str(tr->opts, was);
	if (rc)
		snprintf(now, sizeof(now), "unmapped");
	else
		pt_opts_str(leaf.opts, now);
	snprintf(buf, len,
		 "tlb: vcpu %u may still use va 0x%" PRIx64 " -> 0x%" PRIx64 " %s, but the tables now say %s%s 0x%" PRIx64
		 ": an unmap or downgrade returned before every vcpu flushed",
		 v, va, tr->pa, was, rc ? "" : "-> ", now, rc ? 0 : pa);
	return buf;
}

int tlb_walk(struct tlb *t, unsigned v, uint64_t va, struct tlb_tr *out, enum tlb_source *src, char *why,
	     size_t why_len)
{
	char tmp[8];
	if (!why) {
		why = tmp;
		why_len = sizeof(tmp);
	}
	const struct pt *pt = t->pt;
	if (v >= t->nvcpus || pt_check_range(pt, va & ~(PT_PAGE_SIZE - 1), PT_PAGE_SIZE, NULL))
		return -EINVAL;
	struct tlb_vcpu *c = &t->vcpu[v];
	uint64_t lin = pt_linear(pt, va) & ~(PT_PAGE_SIZE - 1);
	c->walks++;
	/* A TLB hit is used as is. */
	for (unsigned i = 0; i < c->ntr; i++) {
		if (c->tr[i].va != lin)
			continue;
		if (tr_check(t, v, &c->tr[i], why, why_len))
			return -EFAULT;
		*out = c->tr[i];
		out->va = pt_canonical(pt, lin);
		*src = TLB_FROM_TLB;
		return 0;
	}
	/* A miss may start from any cached pointer that covers va. */
	for (unsigned i = 0; i < c->nptr; i++) {
		const struct tlb_ptr *p = &c->ptr[i];
		uint64_t span = pt_level_size(p->level);
		if ((lin & ~(span - 1)) == p->va && ptr_check(t, v, p, why, why_len))
			return -EFAULT;
	}
	const uint64_t *table = pt->root;
	for (int l = pt->levels - 1; l >= 0; l--) {
		uint64_t pte = __atomic_load_n(&table[pt_index(lin, l)], __ATOMIC_ACQUIRE);
		if (!pte_present(pte))
			return -ENOENT;
		if (pte_is_leaf(pte, l)) {
			uint64_t off = lin & (pt_level_size(l) - 1);
			struct tlb_tr tr = { .va = lin, .pa = pte_addr(pte, l) + off, .opts = pte_leaf_opts(pte, l) };
			cache_tr(c, &tr);
			*out = tr;
			out->va = pt_canonical(pt, lin);
			*src = TLB_FROM_TABLES;
			return 0;
		}
		uint64_t child = pte_addr(pte, l);
		cache_ptr(c, lin & ~(pt_level_size(l) - 1), l, child);
		table = pool_page(pt->pool, child);
		if (!table) {
			snprintf(why, why_len, "tlb: the level-%d entry for va 0x%" PRIx64 " points outside the pool (0x%" PRIx64 ")",
				 l, va, child);
			return -EFAULT;
		}
	}
	return -ENOENT;
}

const char *tlb_check_tables(const struct tlb *t, char *buf, size_t len)
{
	for (unsigned v = 0; v < t->nvcpus; v++)
		for (unsigned i = 0; i < t->vcpu[v].nptr; i++)
			if (ptr_check(t, v, &t->vcpu[v].ptr[i], buf, len))
				return buf;
	return NULL;
}

const char *tlb_check_translations(const struct tlb *t, char *buf, size_t len)
{
	for (unsigned v = 0; v < t->nvcpus; v++)
		for (unsigned i = 0; i < t->vcpu[v].ntr; i++)
			if (tr_check(t, v, &t->vcpu[v].tr[i], buf, len))
				return buf;
	return NULL;
}

const char *tlb_check(const struct tlb *t, char *buf, size_t len)
{
	const char *bad = tlb_check_tables(t, buf, len);
	return bad ? bad : tlb_check_translations(t, buf, len);
}
