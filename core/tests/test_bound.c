/* The bound: never too small, and tight. Random sets of units (sorted,
 * disjoint, misaligned on purpose) are mapped and unmapped whole in random
 * orders and subsets on a pool of exactly `bound` pages: it must never run
 * out, and the peak must never pass the bound. With neighbouring units given
 * different permissions (so nothing can collapse across them), mapping all
 * of them must use exactly the bound. Bad units are -EINVAL.
 *
 * With deferred reclamation (pool_defer, docs/live-tables.md): add-only use
 * (every unit mapped once, never unmapped, nothing ever reclaimed: kvmrt's
 * slot faults) still fits the bound, collapsed tables and all; general churn
 * uses at most the bound plus the pages retired and not yet reclaimed when
 * the operation starts, and a pool of the bound plus the worst such backlog
 * never runs out; unmapping everything and mapping it again without a
 * reclaim reaches exactly bound + backlog (tight). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pool.h"
#include "pt.h"
#include "shadow.h"
#include "t.h"

#define K4 0x1000ull
#define M2 0x200000ull
#define G1 0x40000000ull
#define UPPER 0xffff800000000000ull
#define MAX_UNITS 48

#define rnd() ((uint64_t)t_rand())

static uint64_t pick_step(void)
{
	switch (rnd() % 5) {
	case 0: return (1 + rnd() % 8) * K4;
	case 1: return (1 + rnd() % 8) * M2;
	case 2: return (1 + rnd() % 3) * G1;
	case 3: return (rnd() % 3) * G1 + (rnd() % 4) * M2 + (1 + rnd() % 4) * K4;
	default: return (1 + rnd() % 1024) * K4;
	}
}

/* Sorted disjoint units from base, some adjacent, some with gaps, PAs that
 * are aligned, 2M-aligned or only 4K-aligned. */
static size_t make_units(struct pt_unit *u, size_t max, uint64_t base)
{
	size_t n = 1 + rnd() % max;
	uint64_t va = base + (rnd() % 4) * K4;
	for (size_t i = 0; i < n; i++) {
		if (rnd() % 2)
			va += pick_step(); /* a gap */
		uint64_t len = pick_step();
		uint64_t pa;
		switch (rnd() % 3) {
		case 0: pa = va & 0xfffffffffull; break; /* congruent: huge leaves */
		case 1: pa = (va & (G1 - 1)) + 64 * G1 + M2; break;
		default: pa = 128 * G1 + (rnd() % 1024) * K4; break;
		}
		u[i] = (struct pt_unit){ .va = va, .len = len, .pa = pa };
		va += len;
	}
	return n;
}

static uint32_t unit_opts(size_t i, bool vary)
{
	return vary && i % 2 ? PT_R : PT_R | PT_W;
}

static void run_set(const struct pt_unit *u, size_t n, bool huge_1g, bool vary)
{
	uint64_t bound;
	T_EQ(pool_bound(u, n, 4, huge_1g, &bound), 0);
	struct pool pool;
	struct pt pt;
	struct shadow sh;
	T_EQ(pool_init_mmap(&pool, (uint32_t)bound, 0x100000000ull), 0);
	T_EQ(pt_init(&pt, &pool, 4, huge_1g), 0);
	T_EQ(shadow_init(&sh, 4 * MAX_UNITS), 0);
	bool mapped[MAX_UNITS] = { 0 };

	/* Everything, in a random order. */
	for (size_t k = 0; k < 2 * n; k++) {
		size_t i = rnd() % n;
		if (mapped[i])
			continue;
		int r = pt_map(&pt, u[i].va, u[i].len, u[i].pa, unit_opts(i, vary));
		T_CHECK(r == 0, "map unit %zu va 0x%llx len 0x%llx pa 0x%llx: %d (bound %llu, used %u)", i,
			(unsigned long long)u[i].va, (unsigned long long)u[i].len, (unsigned long long)u[i].pa, r,
			(unsigned long long)bound, pool.used);
		shadow_map(&sh, u[i].va, u[i].len, u[i].pa, unit_opts(i, vary));
		mapped[i] = true;
	}
	for (size_t i = 0; i < n; i++) {
		if (!mapped[i]) {
			T_EQ(pt_map(&pt, u[i].va, u[i].len, u[i].pa, unit_opts(i, vary)), 0);
			shadow_map(&sh, u[i].va, u[i].len, u[i].pa, unit_opts(i, vary));
			mapped[i] = true;
		}
	}
	if (vary)
		T_CHECK(pool.used == bound, "all %zu units mapped use %u pages, bound %llu (tight)", n, pool.used,
			(unsigned long long)bound);
	/* Random churn of subsets. */
	for (int k = 0; k < 60; k++) {
		size_t i = rnd() % n;
		int r = mapped[i] ? pt_unmap(&pt, u[i].va, u[i].len)
				  : pt_map(&pt, u[i].va, u[i].len, u[i].pa, unit_opts(i, vary));
		T_CHECK(r == 0, "churn %d unit %zu: %d (bound %llu, used %u)", k, i, r, (unsigned long long)bound,
			pool.used);
		if (r)
			break;
		if (mapped[i])
			shadow_unmap(&sh, u[i].va, u[i].len);
		else
			shadow_map(&sh, u[i].va, u[i].len, u[i].pa, unit_opts(i, vary));
		mapped[i] = !mapped[i];
	}
	T_CHECK(pool.peak <= bound, "peak %u above bound %llu", pool.peak, (unsigned long long)bound);
	char buf[512];
	const char *f = check_tables(&pt, &sh, bound, buf, sizeof(buf));
	T_CHECK(!f, "%s", f);
	pt_destroy(&pt);
	pool_destroy(&pool);
	shadow_destroy(&sh);
}

/* Add-only with retirement: every unit mapped once in a random order on a
 * pool of exactly the bound, nothing reclaimed. A position's table, once
 * collapsed, is never needed again (its range is mapped, and later units
 * are disjoint from it), so each position is taken at most once. */
static void run_addonly(const struct pt_unit *u, size_t n, bool huge_1g, bool vary, uint32_t *retired)
{
	uint64_t bound;
	T_EQ(pool_bound(u, n, 4, huge_1g, &bound), 0);
	struct pool pool;
	struct pt pt;
	T_EQ(pool_init_mmap(&pool, (uint32_t)bound, 0x100000000ull), 0);
	T_EQ(pool_defer(&pool), 0);
	T_EQ(pt_init(&pt, &pool, 4, huge_1g), 0);
	size_t order[MAX_UNITS];
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd() % i, t = order[i - 1];
		order[i - 1] = order[j], order[j] = t;
	}
	for (size_t k = 0; k < n; k++) {
		size_t i = order[k];
		int r = pt_map(&pt, u[i].va, u[i].len, u[i].pa, unit_opts(i, vary));
		T_CHECK(r == 0, "add-only: map unit %zu va 0x%llx len 0x%llx: %d (bound %llu, used %u, retired %u)", i,
			(unsigned long long)u[i].va, (unsigned long long)u[i].len, r, (unsigned long long)bound,
			pool.used, pool_retired(&pool));
	}
	T_CHECK(pool.peak <= bound, "add-only: peak %u (retired %u) above bound %llu", pool.peak, pool_retired(&pool),
		(unsigned long long)bound);
	char buf[512];
	const char *f = check_tables(&pt, NULL, bound, buf, sizeof(buf));
	T_CHECK(!f, "%s", f);
	*retired += pool_retired(&pool);
	pt_destroy(&pt);
	pool_destroy(&pool);
}

/* Fault blocks: one aligned span cut into adjacent pieces with congruent PAs
 * and the same options, so mapping them all collapses tables. */
static size_t make_blocks(struct pt_unit *u, size_t max, uint64_t base)
{
	size_t n = 2 + rnd() % (max - 1);
	uint64_t va = base;
	for (size_t i = 0; i < n; i++) {
		uint64_t len = rnd() % 2 ? (1 + rnd() % 300) * K4 : (1 + rnd() % 3) * M2;
		u[i] = (struct pt_unit){ .va = va, .len = len, .pa = va & 0xfffffffffull };
		va += len;
	}
	return n;
}

struct churn_op {
	size_t unit;
	bool reclaim;  /* a shootdown before this operation: everything retired goes back */
};

/* Runs ops on a pool of `capacity` pages with deferral; returns the worst
 * backlog (pages retired, not reclaimed) an operation started with, and
 * checks that no operation used more than bound + its backlog. */
static uint32_t run_churn(const struct pt_unit *u, bool huge_1g, bool vary, uint64_t bound,
			  uint32_t capacity, const struct churn_op *ops, size_t nops)
{
	struct pool pool;
	struct pt pt;
	bool mapped[MAX_UNITS] = { 0 };
	uint32_t worst = 0;
	T_EQ(pool_init_mmap(&pool, capacity, 0x100000000ull), 0);
	T_EQ(pool_defer(&pool), 0);
	T_EQ(pt_init(&pt, &pool, 4, huge_1g), 0);
	for (size_t k = 0; k < nops; k++) {
		size_t i = ops[k].unit;
		if (ops[k].reclaim)
			pool_reclaim(&pool, UINT64_MAX);
		uint32_t backlog = pool_retired(&pool);
		if (backlog > worst)
			worst = backlog;
		pool.peak = pool.used;
		int r = mapped[i] ? pt_unmap(&pt, u[i].va, u[i].len)
				  : pt_map(&pt, u[i].va, u[i].len, u[i].pa, unit_opts(i, vary));
		T_CHECK(r == 0, "churn op %zu unit %zu: %d (capacity %u, bound %llu, backlog %u, used %u)", k, i, r,
			capacity, (unsigned long long)bound, backlog, pool.used);
		if (r)
			break;
		T_CHECK(pool.peak <= bound + backlog, "churn op %zu: peak %u above bound %llu + backlog %u", k,
			pool.peak, (unsigned long long)bound, backlog);
		mapped[i] = !mapped[i];
	}
	char buf[512];
	const char *f = check_tables(&pt, NULL, bound, buf, sizeof(buf));
	T_CHECK(!f, "%s", f);
	pt_destroy(&pt);
	pool_reclaim(&pool, UINT64_MAX);
	T_EQ(pool.used, 0);
	pool_destroy(&pool);
	return worst;
}

static void run_retire(const struct pt_unit *u, size_t n, bool huge_1g, bool vary)
{
	uint64_t bound;
	T_EQ(pool_bound(u, n, 4, huge_1g, &bound), 0);
	struct churn_op ops[4 * MAX_UNITS + 80];
	size_t nops = 0;
	bool mapped[MAX_UNITS] = { 0 };
	/* Random churn, a shootdown (reclaim) now and then, at least every
	 * fifth operation (so a first run on 8 x bound cannot run out). */
	for (int k = 0; k < 80; k++)
		ops[nops++] = (struct churn_op){ .unit = rnd() % n, .reclaim = rnd() % 6 == 0 || k % 5 == 4 };
	for (size_t k = 0; k < nops; k++)
		mapped[ops[k].unit] = !mapped[ops[k].unit];
	/* Then tight: everything mapped, everything unmapped, everything mapped
	 * again, with no reclaim in between. */
	size_t first = nops;
	for (size_t i = 0; i < n; i++)
		if (!mapped[i])
			ops[nops++] = (struct churn_op){ .unit = i, .reclaim = i == 0 };
	ops[first].reclaim = true;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++)
			ops[nops++] = (struct churn_op){ .unit = i };
	uint32_t worst = run_churn(u, huge_1g, vary, bound, (uint32_t)(8 * bound), ops, nops);
	/* The measured worst backlog, added to the bound, is enough. */
	uint32_t again = run_churn(u, huge_1g, vary, bound, (uint32_t)bound + worst, ops, nops);
	T_EQ(again, worst);
	if (vary) {
		/* Mapping all after unmapping all: the unmap pass retired every
		 * table but the root, and all of them are needed again. */
		struct pool pool;
		struct pt pt;
		T_EQ(pool_init_mmap(&pool, (uint32_t)(2 * bound), 0x100000000ull), 0);
		T_EQ(pool_defer(&pool), 0);
		T_EQ(pt_init(&pt, &pool, 4, huge_1g), 0);
		for (size_t i = 0; i < n; i++)
			T_EQ(pt_map(&pt, u[i].va, u[i].len, u[i].pa, unit_opts(i, vary)), 0);
		T_EQ(pool.used, bound);
		for (size_t i = 0; i < n; i++)
			T_EQ(pt_unmap(&pt, u[i].va, u[i].len), 0);
		uint32_t backlog = pool_retired(&pool);
		T_EQ(backlog, bound - 1);
		for (size_t i = 0; i < n; i++)
			T_EQ(pt_map(&pt, u[i].va, u[i].len, u[i].pa, unit_opts(i, vary)), 0);
		T_CHECK(pool.used == bound + backlog, "tight: used %u, bound %llu + backlog %u", pool.used,
			(unsigned long long)bound, backlog);
		pt_destroy(&pt);
		pool_destroy(&pool);
	}
}

/* A hand-made layout and its exact figure: one 4 KiB unit at a 512 GiB
 * boundary's far side needs PDPT + PD + PT; a 1 GiB unit misaligned by 4 KiB
 * in PA needs its PD and 512 PTs, under the same PDPT. */
static void test_exact_layout(void)
{
	struct pt_unit u[] = {
		{ .va = 0x8000000000ull - K4, .len = K4, .pa = 0 },
		{ .va = 0x8000000000ull, .len = G1, .pa = 5 * G1 + K4 },
	};
	uint64_t bound;
	T_EQ(pool_bound(u, 2, 4, true, &bound), 0);
	T_EQ(bound, 1 + 3 + (1 + 1 + 512));
	run_set(u, 2, true, true);
}

static void test_bad_units(void)
{
	uint64_t pages;
	struct pt_unit unsorted[] = { { G1, K4, 0 }, { 0, K4, 0 } };
	T_EQ(pool_bound(unsorted, 2, 4, true, &pages), -EINVAL);
	struct pt_unit overlap[] = { { 0, 2 * K4, 0 }, { K4, K4, 0 } };
	T_EQ(pool_bound(overlap, 2, 4, true, &pages), -EINVAL);
	struct pt_unit misaligned[] = { { 5, K4, 0 } };
	T_EQ(pool_bound(misaligned, 1, 4, true, &pages), -EINVAL);
	struct pt_unit empty[] = { { 0, 0, 0 } };
	T_EQ(pool_bound(empty, 1, 4, true, &pages), -EINVAL);
	struct pt_unit noncanon[] = { { 0x7ffffffff000ull, 2 * K4, 0 } };
	T_EQ(pool_bound(noncanon, 1, 4, true, &pages), -EINVAL);
	T_EQ(pool_bound(NULL, 0, 4, true, &pages), 0);
	T_EQ(pages, 1);
}

int main(void)
{
	test_exact_layout();
	test_bad_units();
	struct pt_unit u[MAX_UNITS];
	for (int round = 0; round < 40; round++) {
		uint64_t base = round % 3 == 0 ? UPPER : round % 3 == 1 ? 0x7f0000000000ull - 3 * G1 : G1;
		size_t n = make_units(u, round % 5 ? 12 : MAX_UNITS, base);
		if (base != UPPER && u[n - 1].va + u[n - 1].len > 0x800000000000ull)
			continue;
		run_set(u, n, round % 4 != 0, round % 2 == 0);
		uint32_t retired = 0;
		run_addonly(u, n, round % 4 != 0, round % 2 == 0, &retired);
		if (round % 4 == 0)
			run_retire(u, n, round % 8 != 0, round % 8 == 0);
	}
	/* Add-only over fault blocks that collapse: retirement really happens
	 * and the bound still holds. */
	uint32_t retired = 0;
	for (int round = 0; round < 20; round++) {
		uint64_t base = round % 2 ? G1 + 7 * M2 : 0x7f0000000000ull;
		size_t n = make_blocks(u, MAX_UNITS, base);
		run_addonly(u, n, round % 3 != 0, false, &retired);
		if (round % 4 == 0)
			run_retire(u, n, round % 8 != 0, round % 8 == 0);
	}
	T_CHECK(retired > 20, "add-only over fault blocks retired only %u tables in 20 rounds", retired);
	return t_exit();
}
