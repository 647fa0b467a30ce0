/* The checker: walks the real tables as the CPU does (present, R/W, U/S, NX
 * and PS at every level, reserved bits) and reports the first broken
 * invariant of DESIGN.md as "<invariant>: <detail>". It shares the walker
 * with the engine but none of its decisions: uniformity, emptiness and the
 * translation are worked out again here. */
#include "check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "pt_internal.h"
#include "shadow.h"

#define RESERVED_HIGH 0x7ff0000000000000ull /* bits 52..62 */

struct check_walk {
	const struct pt *pt;
	const struct shadow *sh;
	char *buf;
	size_t len;
	bool full;             /* whole tree: marks pages, counts references */
	uint64_t start, end;   /* linear range under check */
	uint64_t refs;         /* table pages referenced */
	uint64_t mapped;       /* bytes of leaves inside [start, end) */
	uint64_t eff[PT_MAX_LEVELS]; /* effective RW/US/NX of the path to table[level] */
};

static int fail(struct check_walk *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct check_walk *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->buf, c->len, fmt, ap);
	va_end(ap);
	return -EFAULT;
}

/* Effective permissions: W and U only if every level allows them, X unless
 * any level forbids it. eff holds the allowed bits (RW, US, and "X" as NX). */
#define EFF_ALL (PTE_RW | PTE_US | PTE_NX)
static uint64_t eff_join(uint64_t eff, uint64_t pte)
{
	uint64_t out = eff & pte & (PTE_RW | PTE_US);
	out |= (eff & PTE_NX) && !(pte & PTE_NX) ? PTE_NX : 0; /* NX bit here means "may execute" */
	return out;
}

static uint32_t eff_opts(uint64_t eff, uint64_t pte)
{
	uint32_t opts = PT_R;
	if (eff & PTE_RW)
		opts |= PT_W;
	if (eff & PTE_NX)
		opts |= PT_X;
	if (eff & PTE_US)
		opts |= PT_USER;
	if (pte & PTE_G)
		opts |= PT_GLOBAL;
	uint64_t mt = pte & (PTE_PWT | PTE_PCD);
	if (mt == PTE_PWT)
		opts |= PT_WC;
	else if (mt == (PTE_PWT | PTE_PCD))
		opts |= PT_UC;
	return opts;
}

static unsigned present_entries(const uint64_t *t)
{
	unsigned n = 0;
	for (int i = 0; i < PT_ENTRIES; i++)
		n += (t[i] & PTE_P) != 0;
	return n;
}

/* The pool's bookkeeping of a table (what the engine frees, collapses and
 * skips scans by): count == the number of present entries, and every present
 * entry inside [lo, hi). */
static int check_count(struct check_walk *c, const uint64_t *t, unsigned present, int level, uint64_t pa)
{
	const struct pool_page_info *info = pool_info(c->pt->pool, t);
	if (info->count != present)
		return fail(c, "structure: table page pa 0x%llx (entries of level %d) holds %u present entries, its count says %u",
			    (unsigned long long)pa, level, present, info->count);
	for (unsigned i = 0; i < PT_ENTRIES; i++)
		if ((t[i] & PTE_P) && (i < info->lo || i >= info->hi))
			return fail(c, "structure: table page pa 0x%llx (entries of level %d) has entry %u present, outside its extent [%u, %u)",
				    (unsigned long long)pa, level, i, info->lo, info->hi);
	return 0;
}

/* One leaf one level up could say what table t (entries of `level`) says. */
static bool child_is_collapsible(const uint64_t *t, int level)
{
	uint64_t size = pt_level_size(level);
	uint64_t keep = PTE_P | PTE_RW | PTE_US | PTE_PWT | PTE_PCD | PTE_G | PTE_NX;
	uint64_t base = pte_addr(t[0], level);
	if (base % (size * PT_ENTRIES))
		return false;
	for (int i = 0; i < PT_ENTRIES; i++) {
		if (!pte_is_leaf(t[i], level) || pte_addr(t[i], level) != base + (uint64_t)i * size ||
		    (t[i] & keep) != (t[0] & keep))
			return false;
	}
	return true;
}

/* The shadow must give [va, va+size) exactly pa.. with opts. */
static int check_leaf_translation(struct check_walk *c, uint64_t va, uint64_t size, uint64_t pa, uint32_t opts)
{
	char o1[32], o2[32];
	for (uint64_t off = 0; off < size;) {
		const struct shadow_range *r = shadow_find(c->sh, va + off);
		if (!r)
			return fail(c, "translation: va 0x%llx maps to pa 0x%llx %s, shadow has nothing",
				    (unsigned long long)(va + off), (unsigned long long)(pa + off), pt_opts_str(opts, o1));
		uint64_t into = va + off - r->va;
		if (r->pa + into != pa + off || r->opts != opts)
			return fail(c, "translation: va 0x%llx maps to pa 0x%llx %s, shadow says pa 0x%llx %s",
				    (unsigned long long)(va + off), (unsigned long long)(pa + off), pt_opts_str(opts, o1),
				    (unsigned long long)(r->pa + into), pt_opts_str(r->opts, o2));
		/* The rest of this shadow range is checked by the same comparison. */
		uint64_t step = r->len - into;
		off += step < size - off ? step : size - off;
	}
	return 0;
}

static int check_leaf(struct check_walk *c, uint64_t pte, int level, uint64_t addr, uint64_t next)
{
	const struct pt *pt = c->pt;
	uint64_t size = pt_level_size(level);
	uint64_t base = addr & ~(size - 1);
	uint64_t va = pt_canonical(pt, base);
	if (level > pt->max_leaf)
		return fail(c, "structure: huge leaf at level %d (va 0x%llx) above the highest allowed", level,
			    (unsigned long long)va);
	if (level > PT_LEVEL_4K && (pte & (size - 1) & PTE_ADDR_MASK & ~PTE_PAT_HUGE))
		return fail(c, "structure: huge leaf at va 0x%llx has pa 0x%llx not aligned to 0x%llx",
			    (unsigned long long)va, (unsigned long long)(pte & PTE_ADDR_MASK), (unsigned long long)size);
	if (pte & (level > PT_LEVEL_4K ? PTE_PAT_HUGE : PTE_PAT_4K))
		return fail(c, "structure: leaf at va 0x%llx has the PAT bit set", (unsigned long long)va);
	uint64_t eff = eff_join(c->eff[level], pte);
	if ((eff & PTE_RW) && (eff & PTE_NX))
		return fail(c, "structure: W+X leaf at va 0x%llx", (unsigned long long)va);
	/* Only the part inside the checked range counts. */
	uint64_t lo = addr, hi = next;
	c->mapped += hi - lo;
	if (!c->sh)
		return 0;
	uint64_t pa = pte_addr(pte, level) + (lo - base);
	return check_leaf_translation(c, pt_canonical(pt, lo), hi - lo, pa, eff_opts(eff, pte));
}

static int check_table_entry(struct check_walk *c, uint64_t pte, int level, uint64_t addr)
{
	const struct pt *pt = c->pt;
	const struct pool *pool = pt->pool;
	uint64_t pa = pte & PTE_ADDR_MASK;
	unsigned long long va = (unsigned long long)pt_canonical(pt, addr & ~(pt_level_size(level) - 1));
	if (!pool_page(pool, pa))
		return fail(c, "structure: entry at level %d va 0x%llx points to pa 0x%llx outside the pool", level, va,
			    (unsigned long long)pa);
	if (!pool_pa_in_use(pool, pa))
		return fail(c, "structure: entry at level %d va 0x%llx points to free pool page pa 0x%llx", level, va,
			    (unsigned long long)pa);
	if (pool_pa_retired(pool, pa))
		return fail(c, "structure: entry at level %d va 0x%llx points to retired pool page pa 0x%llx", level,
			    va, (unsigned long long)pa);
	if ((pte & (PTE_P | PTE_RW | PTE_US | PTE_NX)) != (PTE_P | PTE_RW | PTE_US))
		return fail(c, "structure: table entry at level %d va 0x%llx is not permissive (0x%llx)", level, va,
			    (unsigned long long)pte);
	const uint64_t *child = pt_child(pt, pte);
	if (c->full) {
		uint64_t index = (pa - pool->pa_base) / PT_PAGE_SIZE;
		if (pool->mark[index / 64] & (1ull << (index % 64)))
			return fail(c, "structure: table page pa 0x%llx referenced twice (again at level %d va 0x%llx)",
				    (unsigned long long)pa, level, va);
		pool->mark[index / 64] |= 1ull << (index % 64);
		c->refs++;
	}
	unsigned present = present_entries(child);
	if (present == 0)
		return fail(c, "structure: empty table page pa 0x%llx under level %d va 0x%llx", (unsigned long long)pa,
			    level, va);
	if (check_count(c, child, present, level - 1, pa))
		return -EFAULT;
	if (level <= pt->max_leaf && child_is_collapsible(child, level - 1))
		return fail(c, "canonical: table under level %d va 0x%llx is uniform and should be one leaf", level,
			    va);
	c->eff[level - 1] = eff_join(c->eff[level], pte);
	return PT_WALK_DESCEND;
}

/* A run of 4 KiB entries: entries that continue each other (same bits, next
 * frame) are checked as one span, with one walk through the shadow. */
static int check_leaf_run(void *priv, uint64_t *ptes, unsigned n, uint64_t addr)
{
	struct check_walk *c = priv;
	for (unsigned i = 0; i < n;) {
		uint64_t first = ptes[i];
		if (!pte_present(first)) {
			i++;
			continue;
		}
		if (first & RESERVED_HIGH)
			return fail(c, "structure: reserved bits set in 0x%llx at level 0", (unsigned long long)first);
		unsigned j = i + 1;
		while (j < n && (ptes[j] & ~PTE_ADDR_MASK) == (first & ~PTE_ADDR_MASK) &&
		       (ptes[j] & PTE_ADDR_MASK) == (first & PTE_ADDR_MASK) + (uint64_t)(j - i) * PT_PAGE_SIZE)
			j++;
		uint64_t lo = addr + (uint64_t)i * PT_PAGE_SIZE, hi = addr + (uint64_t)j * PT_PAGE_SIZE;
		int ret = check_leaf(c, first, PT_LEVEL_4K, lo, hi);
		if (ret)
			return ret;
		i = j;
	}
	return 0;
}

static int check_entry(void *priv, uint64_t *ptep, int level, uint64_t addr, uint64_t next)
{
	struct check_walk *c = priv;
	uint64_t pte = *ptep;
	if (!pte_present(pte))
		return 0;
	if (pte & RESERVED_HIGH)
		return fail(c, "structure: reserved bits set in 0x%llx at level %d", (unsigned long long)pte, level);
	if (pte_is_leaf(pte, level))
		return check_leaf(c, pte, level, addr, next);
	return check_table_entry(c, pte, level, addr);
}

static const struct pt_walk_ops check_ops = { .entry = check_entry, .leaf_run = check_leaf_run, .skip_holes = true };

static int walk_checked(struct check_walk *c)
{
	c->eff[c->pt->levels - 1] = EFF_ALL;
	int ret = pt_walk(c->pt, c->start, c->end, &check_ops, c);
	if (ret)
		return ret;
	if (!c->sh)
		return 0;
	/* Every shadow byte in range must have been a leaf byte: the leaves
	 * matched the shadow, so equal totals mean nothing is missing. */
	uint64_t want = 0;
	const struct shadow_range *first = shadow_lower(c->sh, pt_canonical(c->pt, c->start));
	for (const struct shadow_range *r = first; r; r = shadow_next(c->sh, r)) {
		uint64_t lo = pt_linear(c->pt, r->va), hi = lo + r->len;
		if (lo >= c->end)
			break;
		lo = lo > c->start ? lo : c->start;
		hi = hi < c->end ? hi : c->end;
		if (hi > lo)
			want += hi - lo;
	}
	if (want != c->mapped) {
		/* Name the first page the shadow has and the tables lack. */
		for (const struct shadow_range *r = first; r; r = shadow_next(c->sh, r)) {
			if (pt_linear(c->pt, r->va) >= c->end)
				break;
			for (uint64_t off = 0; off < r->len;) {
				uint64_t lin = pt_linear(c->pt, r->va + off);
				struct pt_leaf leaf;
				if (pt_lookup(c->pt, r->va + off, &leaf)) {
					if (lin >= c->start && lin < c->end)
						return fail(c, "translation: va 0x%llx is unmapped, shadow says pa 0x%llx",
							    (unsigned long long)(r->va + off), (unsigned long long)(r->pa + off));
					off += PT_PAGE_SIZE;
					continue;
				}
				off = leaf.va + leaf.size - r->va; /* skip the rest of the leaf */
			}
		}
		return fail(c, "translation: tables map 0x%llx bytes, shadow 0x%llx", (unsigned long long)c->mapped,
			    (unsigned long long)want);
	}
	return 0;
}

/* Free pages by the in-use bitmap (below the capacity), after checking that
 * every summary bit says whether its word is all ones (a wrong one would
 * hide free pages from pool_take or hand out a taken one) and that no page
 * below pool_take's `low` hint is free. UINT32_MAX when either is wrong. */
static uint32_t free_pages_counted(const struct pool *p)
{
	uint32_t words = (p->fresh + 63) / 64; /* above: never taken, all zero */
	const uint64_t *below = p->in_use;
	for (int k = 0; k < p->summary_levels; k++) {
		for (uint32_t w = 0; w < words; w++) {
			bool full = below[w] == ~0ull;
			if (full != !!(p->full[k][w / 64] & (1ull << (w % 64))))
				return UINT32_MAX;
		}
		below = p->full[k];
		words = (words + 63) / 64;
	}
	uint32_t free = 0, free_below_low = 0;
	for (uint32_t i = 0; i < p->capacity; i += 64) {
		uint64_t bits = ~p->in_use[i / 64];
		if (p->capacity - i < 64)
			bits &= (1ull << (p->capacity - i)) - 1;
		free += (uint32_t)__builtin_popcountll(bits);
		if (i < p->low) /* pool_take's hint: every page below low is taken */
			free_below_low += (uint32_t)__builtin_popcountll(p->low - i >= 64 ? bits : bits & ((1ull << (p->low - i)) - 1));
	}
	return free_below_low ? UINT32_MAX : free;
}

const char *check_pool(const struct pool *pool, char *buf, size_t len)
{
	uint32_t free_pages = free_pages_counted(pool);
	if (free_pages == UINT32_MAX) {
		snprintf(buf, len, "accounting: a summary bit of the pool's free-page bitmap, or its low hint, is wrong");
		return buf;
	}
	if (pool->used + free_pages != pool->capacity) {
		snprintf(buf, len, "accounting: used %u + free pages %u != capacity %u", pool->used, free_pages,
			 pool->capacity);
		return buf;
	}
	return NULL;
}

const char *check_tables(const struct pt *pt, const struct shadow *sh, uint64_t bound, char *buf, size_t len)
{
	struct pool *pool = pt->pool;
	struct check_walk c = { .pt = pt, .sh = sh, .buf = buf, .len = len, .full = true };
	c.end = 1ull << (PT_PAGE_SHIFT + 9u * (unsigned)pt->levels);
	memset(pool->mark, 0, ((size_t)pool->capacity + 63) / 64 * sizeof(uint64_t));
	uint64_t root_pa = pool_pa(pool, pt->root);
	if (!pool_pa_in_use(pool, root_pa))
		return fail(&c, "structure: root pa 0x%llx is not a used pool page", (unsigned long long)root_pa), buf;
	uint64_t root_index = (root_pa - pool->pa_base) / PT_PAGE_SIZE;
	pool->mark[root_index / 64] |= 1ull << (root_index % 64);
	if (check_count(&c, pt->root, present_entries(pt->root), pt->levels - 1, root_pa))
		return buf;
	if (walk_checked(&c))
		return buf;
	/* Retired pages (pool_defer) are in use but no longer referenced. */
	if (c.refs + 1 + pool_retired(pool) != pool->used) {
		fail(&c, "accounting: pool used %u, tables referenced %llu + root + retired %u", pool->used,
		     (unsigned long long)c.refs, pool_retired(pool));
		return buf;
	}
	if (check_pool(pool, buf, len))
		return buf;
	/* Live tables never pass the bound; retired pages may (docs/live-tables.md). */
	if (bound && pool->used - pool_retired(pool) > bound) {
		fail(&c, "accounting: pool used %u (%u retired) above the bound %llu", pool->used, pool_retired(pool),
		     (unsigned long long)bound);
		return buf;
	}
	return NULL;
}

const char *check_range(const struct pt *pt, const struct shadow *sh, uint64_t va, uint64_t len, char *buf,
			size_t len_buf)
{
	struct check_walk c = { .pt = pt, .sh = sh, .buf = buf, .len = len_buf };
	c.start = pt_linear(pt, va);
	c.end = c.start + len;
	return walk_checked(&c) ? buf : NULL;
}

/* ---- the canonical-form oracle ----
 *
 * The tables must equal those pt_map builds from scratch from the shadow. To
 * stay in bounded memory the rebuild goes by windows of whole 1 GiB chunks
 * (a chunk is one entry of a PDPT): the canonical form inside a chunk
 * depends only on what is mapped inside it, so a window is rebuilt alone in
 * a small fresh pool (as many chunks as it holds), compared leaf by leaf both
 * ways and table by table (PDs and PTs), then unmapped again. Tables above
 * chunk level are counted: one per aligned region that holds a mapping (no
 * leaf is that large), and the root. Chunks the shadow leaves empty must be
 * empty in the tables too. */

#define REBUILD_LEVEL PT_LEVEL_1G          /* chunk = one entry at this level */
#define REBUILD_CHUNK_PAGES (PT_ENTRIES + 2 * PT_MAX_LEVELS + 8)  /* one chunk needs at most */
#define REBUILD_POOL  4096   /* 16 MiB reserved, touched as needed: several chunks a window */
#define REBUILD_PA_BASE 0x100000000ull  /* any: table addresses are not compared */

struct rebuild_walk {
	const struct pt *self, *other;
	char *buf;
	size_t len;
	uint64_t tables[PT_MAX_LEVELS];    /* tables below chunk level seen */
};

static int rebuild_fail(struct rebuild_walk *r, uint64_t va, uint64_t size)
{
	snprintf(r->buf, r->len, "canonical: leaf va 0x%llx size 0x%llx differs from the tables rebuilt from the shadow",
		 (unsigned long long)va, (unsigned long long)size);
	return -EFAULT;
}

/* The table of `level` that other uses for linear addr, or NULL. */
static const uint64_t *table_for(const struct pt *pt, uint64_t addr, int level)
{
	const uint64_t *t = pt->root;
	for (int l = pt->levels - 1; l > level; l--) {
		uint64_t e = t[pt_index(addr, l)];
		if (!pte_is_table(e, l))
			return NULL;
		t = pt_child(pt, e);
	}
	return t;
}

static int rebuild_entry(void *priv, uint64_t *ptep, int level, uint64_t addr, uint64_t next)
{
	struct rebuild_walk *r = priv;
	uint64_t pte = *ptep;
	(void)next;
	if (!pte_present(pte))
		return 0;
	if (pte_is_table(pte, level)) {
		if (level <= REBUILD_LEVEL)
			r->tables[level - 1]++;
		return PT_WALK_DESCEND;
	}
	uint64_t size = pt_level_size(level);
	uint64_t va = pt_canonical(r->self, addr & ~(size - 1));
	struct pt_leaf leaf;
	if (pt_lookup(r->other, va, &leaf) || leaf.va != va || leaf.size != size ||
	    leaf.pa != pte_addr(pte, level) || leaf.opts != pte_leaf_opts(pte, level))
		return rebuild_fail(r, va, size);
	return 0;
}

/* A page table's entries against the other tree's page table for them. */
static int rebuild_leaf_run(void *priv, uint64_t *ptes, unsigned n, uint64_t addr)
{
	struct rebuild_walk *r = priv;
	const uint64_t *o = table_for(r->other, addr, PT_LEVEL_4K);
	unsigned base = pt_index(addr, PT_LEVEL_4K);
	for (unsigned i = 0; i < n; i++) {
		uint64_t a = ptes[i];
		if (!pte_present(a))
			continue;  /* the walk the other way finds what only the other has */
		uint64_t b = o ? o[base + i] : 0;
		if (a == b)
			continue;  /* the same entry (the usual case): nothing to decode */
		if (!pte_is_leaf(b, PT_LEVEL_4K) || pte_addr(b, PT_LEVEL_4K) != pte_addr(a, PT_LEVEL_4K) ||
		    pte_leaf_opts(b, PT_LEVEL_4K) != pte_leaf_opts(a, PT_LEVEL_4K))
			return rebuild_fail(r, pt_canonical(r->self, addr + (uint64_t)i * PT_PAGE_SIZE), PT_PAGE_SIZE);
	}
	return 0;
}

/* Tables present where the shadow maps nothing: entries at chunk level. */
struct rebuild_holes {
	const struct pt *pt;
	const struct shadow *sh;
	char *buf;
	size_t len;
};

static int rebuild_hole_entry(void *priv, uint64_t *ptep, int level, uint64_t addr, uint64_t next)
{
	struct rebuild_holes *h = priv;
	(void)next;
	if (level > REBUILD_LEVEL && pte_is_table(*ptep, level))
		return PT_WALK_DESCEND;
	uint64_t size = pt_level_size(level);
	uint64_t va = pt_canonical(h->pt, addr & ~(size - 1));
	if (!shadow_is_empty(h->sh, va, size))
		return 0;  /* compared chunk by chunk */
	snprintf(h->buf, h->len, "canonical: %s at level %d va 0x%llx, where the shadow maps nothing",
		 pte_is_table(*ptep, level) ? "table" : "leaf", level, (unsigned long long)va);
	return -EFAULT;
}

/* Maximal runs of the shadow (ranges that continue each other merged), in
 * linear addresses. */
struct rebuild_run {
	const struct pt *pt;
	const struct shadow *sh;
	const struct shadow_range *next;
	uint64_t lin, len, pa;
	uint32_t opts;
};

static bool rebuild_next_run(struct rebuild_run *it)
{
	const struct shadow_range *r = it->next;
	if (!r)
		return false;
	it->lin = pt_linear(it->pt, r->va);
	it->len = r->len;
	it->pa = r->pa;
	it->opts = r->opts;
	for (r = shadow_next(it->sh, r); r; r = shadow_next(it->sh, r)) {
		if (pt_linear(it->pt, r->va) != it->lin + it->len || r->pa != it->pa + it->len || r->opts != it->opts)
			break;
		it->len += r->len;
	}
	it->next = r;
	return true;
}

static const char *rebuild(const struct pt *pt, const struct shadow *sh, struct pool *scratch, char *buf, size_t len,
			   void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx)
{
	static const struct pt_walk_ops ops = { .entry = rebuild_entry, .leaf_run = rebuild_leaf_run, .skip_holes = true };
	static const struct pt_walk_ops hole_ops = { .entry = rebuild_hole_entry, .skip_holes = true };
	const char *result = buf;
	struct pool pool = { 0 };
	struct pt fresh = { 0 };
	const uint64_t chunk = pt_level_size(REBUILD_LEVEL);
	uint64_t want[PT_MAX_LEVELS] = { 0 }, region[PT_MAX_LEVELS];
	snprintf(buf, len, "canonical: could not rebuild (out of memory)");
	if (scratch) {
		/* The caller's pool, reused: costs what the last rebuild used. */
		if (scratch->room < REBUILD_CHUNK_PAGES + PT_MAX_LEVELS ||
		    pool_reset(scratch, scratch->room, REBUILD_PA_BASE) ||
		    pt_init(&fresh, scratch, pt->levels, pt->max_leaf == PT_LEVEL_1G))
			goto out;
	} else if (pool_init_mmap(&pool, REBUILD_POOL, REBUILD_PA_BASE) ||
		   pt_init(&fresh, &pool, pt->levels, pt->max_leaf == PT_LEVEL_1G)) {
		goto out;
	}
	struct pool *fp = scratch ? scratch : &pool;
	for (int l = 0; l < PT_MAX_LEVELS; l++)
		region[l] = UINT64_MAX;
	struct rebuild_run run = { .pt = pt, .sh = sh, .next = shadow_first(sh) };
	bool have = rebuild_next_run(&run);
	uint64_t first = have ? run.lin & ~(chunk - 1) : 0, total = 0;
	if (have) {
		const struct shadow_range *last = shadow_last(sh);
		total = pt_linear(pt, last->va) + last->len - first;
	}
	while (have) {
		/* Rebuild a window of whole chunks: every run's part inside it,
		 * adding chunks while the pool has room for one more. */
		uint64_t c0 = run.lin & ~(chunk - 1), c1;
		do {
			c1 = (run.lin & ~(chunk - 1)) + chunk;
			while (have && run.lin < c1) {
				uint64_t end = run.lin + run.len, stop = end < c1 ? end : c1;
				int ret = pt_map(&fresh, pt_canonical(pt, run.lin), stop - run.lin, run.pa, run.opts);
				if (ret) {
					snprintf(buf, len, "canonical: rebuild map of va 0x%llx len 0x%llx failed (%d)",
						 (unsigned long long)pt_canonical(pt, run.lin),
						 (unsigned long long)(stop - run.lin), ret);
					goto out;
				}
				/* Above chunk level: one table per aligned region mapped. */
				for (int l = REBUILD_LEVEL; l < pt->levels - 1; l++) {
					uint64_t size = pt_level_size(l + 1), a = run.lin / size, b = (stop - 1) / size;
					if (region[l] != UINT64_MAX && a <= region[l])
						a = region[l] + 1;
					if (b != UINT64_MAX && b >= a) {
						want[l] += b - a + 1;
						region[l] = b;
					}
				}
				if (stop < end) {
					run.pa += stop - run.lin;
					run.len = end - stop;
					run.lin = stop;
					break;
				}
				have = rebuild_next_run(&run);
			}
		} while (have && pool_free(fp) >= REBUILD_CHUNK_PAGES);
		/* Compare both ways, leaves and tables below chunk level. */
		struct rebuild_walk mine = { .self = pt, .other = &fresh, .buf = buf, .len = len };
		struct rebuild_walk theirs = { .self = &fresh, .other = pt, .buf = buf, .len = len };
		if (pt_walk(pt, c0, c1, &ops, &mine) || pt_walk(&fresh, c0, c1, &ops, &theirs))
			goto out;
		for (int l = 0; l < REBUILD_LEVEL; l++) {
			if (mine.tables[l] != theirs.tables[l]) {
				snprintf(buf, len, "canonical: %llu tables at level %d in va 0x%llx-0x%llx, rebuilt from the shadow: %llu",
					 (unsigned long long)mine.tables[l], l, (unsigned long long)pt_canonical(pt, c0),
					 (unsigned long long)pt_canonical(pt, c1 - 1) + 1, (unsigned long long)theirs.tables[l]);
				goto out;
			}
			want[l] += theirs.tables[l];
		}
		/* Empty the fresh tables again (by canonical half: unmap takes one). */
		uint64_t half = pt_level_size(pt->levels) / 2;
		int ret = 0;
		if (c0 < half)
			ret = pt_unmap(&fresh, pt_canonical(pt, c0), (c1 < half ? c1 : half) - c0);
		if (!ret && c1 > half)
			ret = pt_unmap(&fresh, pt_canonical(pt, c0 > half ? c0 : half), c1 - (c0 > half ? c0 : half));
		if (ret) {
			snprintf(buf, len, "canonical: rebuild unmap of va 0x%llx failed (%d)",
				 (unsigned long long)pt_canonical(pt, c0), ret);
			goto out;
		}
		if (progress)
			progress(ctx, c1 - first, total);
	}
	/* What lies where the shadow has nothing. */
	struct rebuild_holes holes = { .pt = pt, .sh = sh, .buf = buf, .len = len };
	if (pt_walk(pt, 0, 1ull << (PT_PAGE_SHIFT + 9u * (unsigned)pt->levels), &hole_ops, &holes))
		goto out;
	want[pt->levels - 1] = 1;
	uint64_t have_tables[PT_MAX_LEVELS];
	pt_count_tables(pt, have_tables);
	for (int l = 0; l < pt->levels; l++) {
		if (have_tables[l] != want[l]) {
			snprintf(buf, len, "canonical: %llu tables at level %d, rebuilt from the shadow: %llu",
				 (unsigned long long)have_tables[l], l, (unsigned long long)want[l]);
			goto out;
		}
	}
	result = NULL;
out:
	if (fresh.root)
		pt_destroy(&fresh);
	if (pool.base)
		pool_destroy(&pool);
	return result;
}

const char *check_rebuild_progress(const struct pt *pt, const struct shadow *sh, char *buf, size_t len,
				   void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx)
{
	return rebuild(pt, sh, NULL, buf, len, progress, ctx);
}

const char *check_rebuild(const struct pt *pt, const struct shadow *sh, char *buf, size_t len)
{
	return rebuild(pt, sh, NULL, buf, len, NULL, NULL);
}

const char *check_rebuild_in(const struct pt *pt, const struct shadow *sh, struct pool *scratch, char *buf, size_t len)
{
	return rebuild(pt, sh, scratch, buf, len, NULL, NULL);
}
