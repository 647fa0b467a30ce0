/* Page-table engine tests: leaves of every size, splits that keep the rest of
 * a translation, collapse back to huge leaves, history independence, bad
 * input and pool exhaustion that change nothing, and random operation
 * sequences checked against the shadow after every step. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "pool.h"
#include "pt.h"
#include "shadow.h"
#include "t.h"

#define K4 0x1000ull
#define M2 0x200000ull
#define G1 0x40000000ull
#define G512 0x8000000000ull
#define UPPER 0xffff800000000000ull

struct env {
	struct pool pool;
	struct pt pt;
	struct shadow sh;
};

static void env_open(struct env *e, uint32_t pages, bool huge_1g)
{
	T_CHECK(pool_init_mmap(&e->pool, pages, 0x100000000ull) == 0, "pool of %u pages", pages);
	T_CHECK(pt_init(&e->pt, &e->pool, 4, huge_1g) == 0, "pt_init");
	T_CHECK(shadow_init(&e->sh, 1 << 14) == 0, "shadow_init");
}

static void env_close(struct env *e)
{
	pt_destroy(&e->pt);
	T_EQ(e->pool.used, 0);
	pool_destroy(&e->pool);
	shadow_destroy(&e->sh);
}

/* Maps in both the engine and the shadow; both must agree on the result. */
static int both_map(struct env *e, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts)
{
	int r = pt_map(&e->pt, va, len, pa, opts);
	if (r != -ENOMEM) {
		int s = shadow_map(&e->sh, va, len, pa, opts);
		T_CHECK(r == s, "map va 0x%llx len 0x%llx pa 0x%llx opts 0x%x: engine %d shadow %d",
			(unsigned long long)va, (unsigned long long)len, (unsigned long long)pa, opts, r, s);
	}
	return r;
}

static int both_unmap(struct env *e, uint64_t va, uint64_t len)
{
	int r = pt_unmap(&e->pt, va, len);
	if (r != -ENOMEM) {
		int s = shadow_unmap(&e->sh, va, len);
		T_CHECK(r == s, "unmap va 0x%llx len 0x%llx: engine %d shadow %d", (unsigned long long)va,
			(unsigned long long)len, r, s);
	}
	return r;
}

static void expect_ok(struct env *e, const char *what)
{
	char buf[512];
	const char *f = check_tables(&e->pt, &e->sh, 0, buf, sizeof(buf));
	T_CHECK(!f, "%s: %s", what, f);
	if (!f) {
		f = check_rebuild(&e->pt, &e->sh, buf, sizeof(buf));
		T_CHECK(!f, "%s: %s", what, f);
	}
}

static void expect_leaf(struct env *e, uint64_t va, uint64_t pa, uint64_t size, uint32_t opts)
{
	struct pt_leaf leaf;
	int r = pt_lookup(&e->pt, va, &leaf);
	T_CHECK(r == 0, "lookup 0x%llx: %d", (unsigned long long)va, r);
	if (r)
		return;
	T_CHECK(leaf.pa + (va - leaf.va) == pa && leaf.size == size && leaf.opts == opts,
		"lookup 0x%llx: pa 0x%llx size 0x%llx opts 0x%x, want pa 0x%llx size 0x%llx opts 0x%x",
		(unsigned long long)va, (unsigned long long)(leaf.pa + (va - leaf.va)), (unsigned long long)leaf.size,
		leaf.opts, (unsigned long long)pa, (unsigned long long)size, opts);
}

static uint64_t fingerprint(const struct env *e)
{
	const struct pool *p = &e->pool;
	uint64_t h = 1469598103934665603ull ^ p->used ^ ((uint64_t)p->fresh << 40);
	for (uint32_t i = 0; i < p->capacity; i++) {
		if (!(p->in_use[i / 64] & (1ull << (i % 64))))
			continue;
		const uint64_t *pg = (const uint64_t *)(p->base + (size_t)i * 4096);
		for (int j = 0; j < 512; j++)
			h = (h ^ pg[j] ^ i) * 1099511628211ull;
	}
	return h;
}

static void test_leaf_sizes(void)
{
	struct env e;
	env_open(&e, 1024, true);
	T_EQ(both_map(&e, G1, G1, 2 * G1, PT_R | PT_W), 0);
	expect_leaf(&e, G1 + 0x1234, 2 * G1 + 0x1234, G1, PT_R | PT_W);
	T_EQ(both_map(&e, 4 * G1 + M2, M2, 8 * G1, PT_R | PT_X | PT_USER), 0);
	expect_leaf(&e, 4 * G1 + M2 + 5, 8 * G1 + 5, M2, PT_R | PT_X | PT_USER);
	T_EQ(both_map(&e, 6 * G1, G1, 9 * G1 + K4, PT_R), 0); /* PA forbids huge leaves */
	expect_leaf(&e, 6 * G1 + 7 * K4, 9 * G1 + 8 * K4, K4, PT_R);
	T_EQ(both_map(&e, UPPER, M2, 0, PT_R | PT_GLOBAL | PT_UC), 0);
	expect_leaf(&e, UPPER + 1, 1, M2, PT_R | PT_GLOBAL | PT_UC);
	T_EQ(both_map(&e, 0xfffffffffffff000ull, K4, 5 * K4, PT_R | PT_W | PT_WC), 0);
	expect_leaf(&e, 0xffffffffffffffffull, 6 * K4 - 1, K4, PT_R | PT_W | PT_WC);
	expect_ok(&e, "leaf sizes");
	env_close(&e);

	env_open(&e, 64, false); /* 1 GiB leaves off: 512 2 MiB leaves */
	T_EQ(both_map(&e, G1, G1, 2 * G1, PT_R | PT_W), 0);
	expect_leaf(&e, G1 + 0x1234, 2 * G1 + 0x1234, M2, PT_R | PT_W);
	uint64_t tables[5];
	pt_count_tables(&e.pt, tables);
	T_EQ(tables[1], 1);
	expect_ok(&e, "no 1G");
	env_close(&e);
}

static void test_split_and_collapse(void)
{
	struct env e;
	env_open(&e, 64, true);
	T_EQ(both_map(&e, G1, G1, 4 * G1, PT_R | PT_W), 0);
	T_EQ(e.pool.used, 2);
	/* A 4 KiB hole splits the 1 GiB leaf down to 4 KiB around it. */
	T_EQ(both_unmap(&e, G1 + 3 * M2 + 5 * K4, K4), 0);
	T_EQ(e.pool.used, 4);
	expect_leaf(&e, G1, 4 * G1, M2, PT_R | PT_W);
	expect_leaf(&e, G1 + 3 * M2 + 4 * K4, 4 * G1 + 3 * M2 + 4 * K4, K4, PT_R | PT_W);
	expect_leaf(&e, G1 + 3 * M2 + 6 * K4, 4 * G1 + 3 * M2 + 6 * K4, K4, PT_R | PT_W);
	expect_leaf(&e, 2 * G1 - 1, 5 * G1 - 1, M2, PT_R | PT_W);
	struct pt_leaf leaf;
	T_EQ(pt_lookup(&e.pt, G1 + 3 * M2 + 5 * K4, &leaf), -ENOENT);
	expect_ok(&e, "after split");
	/* A map with other permissions splits too and keeps the rest. */
	T_EQ(both_map(&e, G1 + 7 * M2, K4, 4 * G1 + 7 * M2, PT_R), 0);
	expect_leaf(&e, G1 + 7 * M2 + K4, 4 * G1 + 7 * M2 + K4, K4, PT_R | PT_W);
	expect_ok(&e, "after permission split");
	/* Filling the holes with the same translation collapses everything. */
	T_EQ(both_map(&e, G1 + 7 * M2, K4, 4 * G1 + 7 * M2, PT_R | PT_W), 0);
	T_EQ(both_map(&e, G1 + 3 * M2 + 5 * K4, K4, 4 * G1 + 3 * M2 + 5 * K4, PT_R | PT_W), 0);
	T_EQ(e.pool.used, 2);
	expect_leaf(&e, G1 + 5, 4 * G1 + 5, G1, PT_R | PT_W);
	expect_ok(&e, "after collapse");
	/* Not contiguous: no collapse. */
	T_EQ(both_map(&e, G1, K4, 9 * G1, PT_R | PT_W), 0);
	T_EQ(e.pool.used, 4);
	expect_ok(&e, "discontiguous");
	T_EQ(both_unmap(&e, G1, G1), 0);
	T_EQ(e.pool.used, 1);
	expect_ok(&e, "unmapped");
	env_close(&e);
}

/* The same final mapping reached two ways gives the same tables. */
static void test_history_independence(void)
{
	struct env a, b;
	env_open(&a, 256, true);
	env_open(&b, 256, true);
	T_EQ(both_map(&a, 0, 4 * G1, 0, PT_R | PT_W), 0);
	T_EQ(both_unmap(&a, 0, 4 * G1), 0);
	T_EQ(both_map(&a, G1, G1, G1, PT_R | PT_W), 0);
	for (uint64_t off = 0; off < G1; off += 64 * M2 + K4)
		T_EQ(both_map(&b, G1 + off, K4, G1 + off, PT_R | PT_W), 0);
	T_EQ(both_map(&b, G1, G1, G1, PT_R | PT_W), 0);
	T_EQ(a.pool.used, b.pool.used);
	T_EQ(fingerprint(&a) != 0, 1);
	expect_ok(&a, "history a");
	expect_ok(&b, "history b");
	env_close(&a);
	env_close(&b);
}

static void test_bad_input_changes_nothing(void)
{
	struct env e;
	env_open(&e, 64, true);
	T_EQ(both_map(&e, G1 + M2, 3 * M2 + K4, 7 * K4, PT_R | PT_W), 0);
	uint64_t before = fingerprint(&e);
	struct { uint64_t va, len, pa; uint32_t opts; } bad[] = {
		{ G1 + 1, K4, 0, PT_R },                       /* misaligned va */
		{ G1, K4 + 1, 0, PT_R },                       /* misaligned len */
		{ G1, K4, 5, PT_R },                           /* misaligned pa */
		{ G1, 0, 0, PT_R },                            /* zero length */
		{ 0xfffffffffffff000ull, 2 * K4, 0, PT_R },    /* wraps */
		{ 0x7ffffffff000ull, 2 * K4, 0, PT_R },        /* leaves the lower half */
		{ 0x800000000000ull, K4, 0, PT_R },            /* not canonical */
		{ 0xffff7ffffffff000ull, K4, 0, PT_R },        /* not canonical */
		{ G1, K4, 1ull << 52, PT_R },                  /* pa too high */
		{ G1, 2 * K4, (1ull << 52) - K4, PT_R },       /* pa + len too high */
		{ G1, K4, 0, PT_R | PT_W | PT_X },             /* W+X */
		{ G1, K4, 0, 0 },                              /* no access */
		{ G1, K4, 0, PT_R | PT_WC | PT_UC },           /* two memory types */
		{ G1, K4, 0, 0x100 },                          /* unknown bits */
		{ 0, ~0ull - 0xfff, 0, PT_R },                 /* huge wrapping length */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		T_CHECK(both_map(&e, bad[i].va, bad[i].len, bad[i].pa, bad[i].opts) == -EINVAL, "bad map %zu", i);
		if (bad[i].opts == PT_R)
			T_CHECK(bad[i].pa % K4 || bad[i].pa + bad[i].len > (1ull << 52) ||
					both_unmap(&e, bad[i].va, bad[i].len) == -EINVAL,
				"bad unmap %zu", i);
		T_CHECK(fingerprint(&e) == before, "bad input %zu changed the tables", i);
	}
	struct pt_leaf leaf;
	T_EQ(pt_lookup(&e.pt, 0x800000000000ull, &leaf), -EINVAL);
	bool empty;
	T_EQ(pt_is_empty(&e.pt, 0x800000000000ull, K4, &empty), -EINVAL);
	expect_ok(&e, "bad input");
	env_close(&e);
}

/* Pool exhaustion is -ENOMEM with nothing changed, even mid-way through what
 * would have been a long operation. */
static void test_pool_exhaustion(void)
{
	struct env e;
	env_open(&e, 6, true);
	T_EQ(both_map(&e, G1, G1, 0, PT_R | PT_W), 0);
	uint64_t before = fingerprint(&e);
	/* 1 GiB with a PA that forbids huge leaves needs 1 PD + 512 PT. */
	T_EQ(pt_map(&e.pt, 2 * G1, G1, K4, PT_R), -ENOMEM);
	T_CHECK(fingerprint(&e) == before, "failed map changed the tables");
	uint32_t cost = 0;
	T_EQ(pt_map_cost(&e.pt, 2 * G1, G1, K4, PT_R, &cost), 0);
	T_EQ(cost, 513);
	/* Splitting a 1 GiB leaf down to 4 KiB at both ends needs 1 + 2 pages... */
	T_EQ(pt_unmap_cost(&e.pt, G1 + K4, G1 - 2 * K4, &cost), 0);
	T_EQ(cost, 3);
	/* ...and an unmap that needs more than is free fails whole. */
	T_EQ(both_map(&e, 3 * G1 + K4, 2 * M2, 0x1000, PT_R), 0); /* uses 3 */
	before = fingerprint(&e);
	T_EQ(e.pool.used, 5);
	T_EQ(pt_unmap(&e.pt, G1 + K4, G1 - 2 * K4), -ENOMEM);
	T_CHECK(fingerprint(&e) == before, "failed unmap changed the tables");
	expect_ok(&e, "exhaustion");
	env_close(&e);
}

/* ---- random sequences against the shadow ---- */

#define rnd() ((uint64_t)t_rand())

/* An address near an interesting boundary, in either half. */
static uint64_t pick_va(void)
{
	static const uint64_t bases[] = { 0, G1, 3 * G1, G512 - G1, G512, 0x7fffc0000000ull, UPPER,
					  0xffffffffc0000000ull };
	uint64_t va = bases[rnd() % 8];
	switch (rnd() % 4) {
	case 0: va += (rnd() % 4) * G1; break;
	case 1: va += (rnd() % 1024) * M2; break;
	case 2: va += (rnd() % 4096) * K4; break;
	default: va += (rnd() % 8) * M2 + (rnd() % 8) * K4; break;
	}
	return va;
}

static uint64_t pick_len(void)
{
	static const uint64_t lens[] = { K4, 2 * K4, M2, M2 - K4, M2 + K4, G1, G1 + M2, 3 * M2 };
	return rnd() % 2 ? lens[rnd() % 8] : (1 + rnd() % 1024) * K4;
}

static uint32_t pick_opts(void)
{
	static const uint32_t opts[] = { PT_R, PT_R | PT_W, PT_R | PT_X, PT_R | PT_W | PT_USER, PT_R | PT_GLOBAL,
					 PT_R | PT_W | PT_UC };
	return opts[rnd() % 6];
}

static void test_random(void)
{
	for (int round = 0; round < 40; round++) {
		struct env e;
		env_open(&e, round % 4 ? 8192 : 40, round % 3 != 0);
		for (int i = 0; i < 60; i++) {
			uint64_t va = pick_va(), len = pick_len();
			uint64_t pa = rnd() % 2 ? (va & 0xffffffffffull) : (rnd() % 4096) * M2 + (rnd() % 2) * K4;
			uint64_t before = fingerprint(&e);
			int r = rnd() % 3 ? both_map(&e, va, len, pa, pick_opts()) : both_unmap(&e, va, len);
			if (r == -ENOMEM)
				T_CHECK(fingerprint(&e) == before, "round %d op %d: -ENOMEM changed tables", round, i);
			char buf[512];
			const char *f = check_range(&e.pt, &e.sh, va, r == -EINVAL ? K4 : len, buf, sizeof(buf));
			if (!T_CHECK(!f, "round %d op %d: %s", round, i, f))
				break;
			T_CHECK(e.pool.used <= e.pool.capacity, "accounting");
		}
		expect_ok(&e, "random");
		env_close(&e);
	}
}

/* The level count is a parameter: 5-level tables (57-bit addresses) work
 * through the same walker. */
static void test_five_levels(void)
{
	struct pool pool;
	struct pt pt;
	T_EQ(pool_init_mmap(&pool, 64, 0x100000000ull), 0);
	T_EQ(pt_init(&pt, &pool, 5, true), 0);
	uint64_t va = 0x00ff000000000000ull; /* needs the fifth level */
	T_EQ(pt_map(&pt, va, G1 + K4, 3 * G1, PT_R | PT_W), 0);
	struct pt_leaf leaf;
	T_EQ(pt_lookup(&pt, va + G1, &leaf), 0);
	T_EQ(leaf.size, K4);
	T_EQ(leaf.pa, 4 * G1);
	T_EQ(pt_lookup(&pt, va + 5, &leaf), 0);
	T_EQ(leaf.size, G1);
	T_EQ(pt_lookup(&pt, 0xff00000000000000ull, &leaf), -ENOENT); /* canonical upper half, 57 bits */
	T_EQ(pt_map(&pt, 0x0100000000000000ull, K4, 0, PT_R), -EINVAL); /* not canonical in 57 bits */
	uint64_t tables[5];
	pt_count_tables(&pt, tables);
	T_EQ(tables[4], 1);
	T_EQ(tables[3], 1);
	T_EQ(pool.used, 5); /* PML5 root, PML4, PDPT (holding the 1 GiB leaf), PD, PT */
	char buf[256];
	const char *f = check_tables(&pt, NULL, 0, buf, sizeof(buf));
	T_CHECK(!f, "%s", f);
	T_EQ(pt_unmap(&pt, va, G1 + K4), 0);
	T_EQ(pool.used, 1);
	pt_destroy(&pt);
	pool_destroy(&pool);
}

/* The pool's per-table count of present entries at its edges (partly
 * present runs, 0 by partial unmaps, 511 -> 512 collapses), checked by
 * check_tables after every step; and a page given back with entries in it
 * (a collapse) comes back zero. */
static void test_counts(void)
{
	static const struct { bool map; uint64_t va, len, pa; } ops[] = {
		{ true, 0x200000, 2 * K4, 0x10000000 },	  { true, 0x200000, K4, 0x20000000 },
		{ true, 0x201000, 2 * K4, 0x30000000 },	  { false, 0x200000, K4, 0 },
		{ false, 0x201000, 2 * K4, 0 },		  { true, G1, M2, 2 * G1 },
		{ false, G1 + K4, K4, 0 },		  { true, G1 + K4, K4, 2 * G1 + K4 },
		{ true, G1 + 2 * M2, M2 / 2, 3 * G1 },	  { true, G1 + 2 * M2 + M2 / 4, M2 / 2, 3 * G1 + M2 / 4 },
		{ true, G1 + 2 * M2 + M2 / 2, M2 / 2, 3 * G1 + M2 / 2 }, { false, G1, 4 * M2, 0 },
	};
	struct env e;
	env_open(&e, 64, true);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (ops[i].map)
			T_EQ(both_map(&e, ops[i].va, ops[i].len, ops[i].pa, PT_R | PT_W), 0);
		else
			T_EQ(both_unmap(&e, ops[i].va, ops[i].len), 0);
		char buf[512];
		const char *f = check_tables(&e.pt, &e.sh, 0, buf, sizeof(buf));
		T_CHECK(!f, "count step %zu: %s", i, f);
		T_EQ(*pool_count(&e.pool, e.pt.root), e.sh.count ? 1 : 0);
	}
	env_close(&e);

	/* A dirty page (count not 0) is cleared when taken again; a clean one
	 * keeps its zeros. */
	struct pool pool;
	T_EQ(pool_init_mmap(&pool, 4, 0x100000000ull), 0);
	uint64_t *a, *b;
	T_EQ(pool_take(&pool, &a), 0);
	for (int i = 0; i < 512; i++)
		a[i] = 0x1001;
	*pool_count(&pool, a) = 512;
	pool_give(&pool, a);
	T_EQ(*pool_count(&pool, a), 0);
	T_EQ(pool_take(&pool, &b), 0);
	T_CHECK(a == b, "the page given back is taken first");
	int nonzero = 0;
	for (int i = 0; i < 512; i++)
		nonzero += b[i] != 0;
	T_EQ(nonzero, 0);
	pool_give(&pool, b);
	pool_destroy(&pool);

	/* pool_prefault faults the pool in and leaves it zero and usable. */
	T_EQ(pool_init_mmap(&pool, 8, 0x100000000ull), 0);
	T_EQ(pool_prefault(&pool), 0);
	struct pt pt;
	T_EQ(pt_init(&pt, &pool, 4, true), 0);
	T_EQ(pt_map(&pt, G1 + K4, K4, K4, PT_R), 0);
	T_EQ(pool.used, 4);
	pt_destroy(&pt);
	T_EQ(pool.used, 0);
	pool_destroy(&pool);
}

/* pool_reset: every page zero and free again, with a new capacity and PA,
 * visiting only what was used: the pages never taken are PROT_NONE here, so
 * a reset that touched them would die. */
static void test_pool_reset(void)
{
	const uint32_t room = 64, used_pages = 8;
	size_t bytes = pool_bytes(room);
	uint8_t *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!T_CHECK(mem != MAP_FAILED, "mmap"))
		return;
	struct pool pool;
	struct pt pt;
	struct shadow sh;
	T_EQ(pool_init(&pool, mem, room, 0x100000000ull), 0);
	T_EQ(shadow_init(&sh, 64), 0);
	for (int round = 0; round < 3; round++) {
		T_EQ(pt_init(&pt, &pool, 4, true), 0);
		/* 4 KiB pages over two 2 MiB entries, a collapse, a split. */
		T_EQ(pt_map(&pt, M2 - 4 * K4, 8 * K4, 0x40000000, PT_R | PT_W), 0);
		T_EQ(pt_map(&pt, G1, M2, 2 * G1, PT_R), 0);
		T_EQ(pt_unmap(&pt, G1 + K4, K4), 0);
		T_EQ(pt_map(&pt, 3 * G1, 2 * M2, 3 * G1, PT_R | PT_W), 0);
		T_CHECK(pool.fresh <= used_pages, "round %d took %u pages", round, pool.fresh);
		if (round == 0)
			mprotect(mem + (size_t)used_pages * K4, (size_t)(room - used_pages) * K4, PROT_NONE);
		/* No pt_destroy: the reset clears the tables still in use. */
		uint32_t cap = round == 1 ? 16 : room;
		uint64_t pa = round == 1 ? 0x7ffff000ull : 0x100000000ull;
		T_EQ(pool_reset(&pool, cap, pa), 0);
		T_EQ(pool.used, 0);
		T_EQ(pool.fresh, 0);
		T_EQ(pool.capacity, cap);
		T_EQ(pool.pa_base, pa);
		int nonzero = 0;
		for (uint32_t i = 0; i < used_pages * 512; i++)
			nonzero += ((uint64_t *)mem)[i] != 0;
		T_EQ(nonzero, 0);
		for (uint32_t i = 0; i < used_pages; i++)
			T_CHECK(!pool_pa_in_use(&pool, pa + i * K4) && pool.info[i].count == 0, "page %u", i);
	}
	/* Deferral ends with a reset, and starts again on the same retire
	 * list: no mapping per fuzz input. */
	T_EQ(pt_init(&pt, &pool, 4, true), 0);
	T_EQ(pool_defer(&pool), 0);
	uint32_t *ring = pool.live.ring;
	T_EQ(pt_map(&pt, G1, K4, 0, PT_R), 0);
	T_EQ(pt_unmap(&pt, G1, K4), 0);
	T_EQ(pool_retired(&pool), 3);
	T_EQ(pool_reset(&pool, room, 0x100000000ull), 0);
	T_CHECK(!pool_deferred(&pool) && pool_retired(&pool) == 0 && pool_epoch(&pool) == 0, "deferral off after reset");
	T_EQ(pool_defer(&pool), 0);
	T_CHECK(pool.live.ring == ring, "pool_defer after a reset reuses the retire list");
	T_CHECK(pool_deferred(&pool) && pool_epoch(&pool) == 1, "deferral on again");
	for (uint32_t i = 0; i < room; i++)
		T_CHECK(!pool_pa_retired(&pool, 0x100000000ull + i * K4), "page %u still retired", i);
	T_EQ(pool_reset(&pool, room, 0x100000000ull), 0);
	T_EQ(pool_reset(&pool, room + 1, 0), -EINVAL);
	/* pool_init_zeroed writes nothing, and taking pages writes only the
	 * bookkeeping: the pages themselves are PROT_NONE here. */
	uint8_t *zero = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (T_CHECK(zero != MAP_FAILED, "mmap")) {
		struct pool zp;
		mprotect(zero, (size_t)room * K4, PROT_NONE);
		T_EQ(pool_init_zeroed(&zp, zero, room, 0x100000000ull), 0);
		uint64_t *pages[3];
		for (int i = 0; i < 3; i++)
			T_EQ(pool_take(&zp, &pages[i]), 0);
		T_EQ(zp.used, 3);
		T_EQ(pool_init_zeroed(&zp, zero + 1, room, 0), -EINVAL);
		munmap(zero, bytes);
	}
	T_EQ(pool_reset(&pool, 0, 0), -EINVAL);
	T_EQ(pool_reset(&pool, 4, 0x800), -EINVAL);
	/* The tables work again from the reset pool. */
	T_EQ(pt_init(&pt, &pool, 4, true), 0);
	T_EQ(pt_map(&pt, 0, M2, 0, PT_R), 0);
	char buf[256];
	shadow_clear(&sh);
	T_EQ(shadow_map(&sh, 0, M2, 0, PT_R), 0);
	const char *bad = check_tables(&pt, &sh, 0, buf, sizeof(buf));
	T_CHECK(!bad, "after reset: %s", bad);
	pt_destroy(&pt);
	shadow_destroy(&sh);
	pool_destroy(&pool); /* the retire list; the memory is the test's */
	munmap(mem, bytes);
}

/* pool_take hands out the lowest free page, through summary levels over the
 * in-use bitmap (5000 pages: 79 words, then 2, then 1), and the checker
 * catches a summary bit that lies. */
static void test_pool_lowest_first(void)
{
	enum { PAGES = 5000 };
	static uint64_t *page[PAGES];
	struct pool pool;
	T_EQ(pool_init_mmap(&pool, PAGES, 0x100000000ull), 0);
	T_EQ(pool.summary_levels, 2);
	for (uint32_t i = 0; i < PAGES; i++) {
		T_EQ(pool_take(&pool, &page[i]), 0);
		T_CHECK(page[i] == (uint64_t *)(pool.base + (size_t)i * K4), "take %u: page %ld", i,
			(long)(((uint8_t *)page[i] - pool.base) / (long)K4));
	}
	uint64_t *none;
	T_EQ(pool_take(&pool, &none), -ENOMEM);
	/* Give back every 7th page and a whole 64-page word, highest first:
	 * they come back lowest first. */
	for (int i = PAGES - 1; i >= 0; i--)
		if (i % 7 == 3 || (i >= 4096 && i < 4160))
			pool_give(&pool, page[i]);
	uint32_t last = 0;
	bool first = true;
	while (pool_take(&pool, &none) == 0) {
		uint32_t index = (uint32_t)(((uint8_t *)none - pool.base) / K4);
		T_CHECK(first || index > last, "took page %u after %u", index, last);
		T_CHECK(index % 7 == 3 || (index >= 4096 && index < 4160), "took page %u, which was not given back", index);
		last = index;
		first = false;
	}
	T_EQ(pool.used, PAGES);
	pool_destroy(&pool);

	struct env e;
	env_open(&e, 200, true);
	T_EQ(both_map(&e, G1 + K4, K4, K4, PT_R), 0);
	char buf[256];
	const char *bad = check_tables(&e.pt, &e.sh, 0, buf, sizeof(buf));
	T_CHECK(!bad, "%s", bad);
	e.pool.full[0][0] ^= 1; /* "in_use word 0 is full": it is not */
	bad = check_tables(&e.pt, &e.sh, 0, buf, sizeof(buf));
	T_CHECK(bad && strstr(bad, "summary bit"), "a wrong summary bit passed the checker: %s", bad ? bad : "ok");
	e.pool.full[0][0] ^= 1;
	e.pool.low += 1; /* "page `low` is taken": it is free */
	bad = check_tables(&e.pt, &e.sh, 0, buf, sizeof(buf));
	T_CHECK(bad && strstr(bad, "low hint"), "a wrong low hint passed the checker: %s", bad ? bad : "ok");
	e.pool.low -= 1;
	env_close(&e);
}

int main(void)
{
	test_pool_lowest_first();
	test_pool_reset();
	test_counts();
	test_five_levels();
	test_leaf_sizes();
	test_split_and_collapse();
	test_history_independence();
	test_bad_input_changes_nothing();
	test_pool_exhaustion();
	test_random();
	return t_exit();
}
