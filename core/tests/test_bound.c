/* The bound: never too small, and tight. Random sets of units (sorted,
 * disjoint, misaligned on purpose) are mapped and unmapped whole in random
 * orders and subsets on a pool of exactly `bound` pages: it must never run
 * out, and the peak must never pass the bound. With neighbouring units given
 * different permissions (so nothing can collapse across them), mapping all
 * of them must use exactly the bound. Bad units are -EINVAL. */
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
	}
	return t_exit();
}
