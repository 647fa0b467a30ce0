/* Shadow and rebuild-oracle tests: random map/unmap sequences against a
 * page-by-page model (lookups, emptiness, order and disjointness of the
 * ranges, the tree growing past its first capacity), a scale run of
 * single-page maps with alternating permissions (nothing merges) that must
 * stay O(log n) per op, and check_rebuild catching tables that translate
 * right but are not canonical, or map what the shadow does not. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "pool.h"
#include "pt.h"
#include "pt_internal.h"
#include "shadow.h"
#include "t.h"

#define K4 0x1000ull
#define M2 0x200000ull
#define G1 0x40000000ull
#define UPPER 0xffff800000000000ull
#define PAGES 512                        /* the model's window: 2 MiB */

struct model {
	uint64_t pa[PAGES];   /* 0: unmapped, else pa + 1 */
	uint32_t opts[PAGES];
};

static const uint32_t some_opts[] = { PT_R, PT_R | PT_W, PT_R | PT_X, PT_R | PT_USER, PT_R | PT_W | PT_UC };

/* base: where the window lies (lower or upper half). */
static void compare(const struct shadow *s, const struct model *m, uint64_t base)
{
	size_t n = 0;
	uint64_t prev_end = 0;
	for (const struct shadow_range *r = shadow_first(s); r; r = shadow_next(s, r)) {
		T_CHECK(r->len && r->va >= prev_end, "range %zu va 0x%llx overlaps or is out of order", n,
			(unsigned long long)r->va);
		if (n)
			T_CHECK(shadow_prev(s, shadow_next(s, shadow_prev(s, r))) == shadow_prev(s, r), "list links");
		prev_end = r->va + r->len;
		n++;
	}
	T_EQ(n, s->count);
	T_CHECK(n == 0 || shadow_last(s)->va + shadow_last(s)->len == prev_end, "last");
	for (int i = 0; i < PAGES; i++) {
		uint64_t pa = 0;
		uint32_t opts = 0;
		int r = shadow_lookup(s, base + (uint64_t)i * K4, &pa, &opts);
		if (m->pa[i]) {
			if (!T_CHECK(r == 0 && pa + 1 == m->pa[i] && opts == m->opts[i], "page %d", i))
				return;
		} else if (!T_CHECK(r == -ENOENT, "page %d mapped", i)) {
			return;
		}
	}
	for (int k = 0; k < 64; k++) {
		int a = (int)(t_rand() % PAGES), b = a + 1 + (int)(t_rand() % 16);
		if (b > PAGES)
			b = PAGES;
		bool want = true;
		for (int i = a; i < b; i++)
			want &= !m->pa[i];
		T_EQ(shadow_is_empty(s, base + (uint64_t)a * K4, (uint64_t)(b - a) * K4), want);
	}
}

static void test_random(uint64_t base)
{
	struct shadow s;
	struct model m;
	memset(&m, 0, sizeof(m));
	T_EQ(shadow_init(&s, 4), 0);   /* small: it must grow */
	for (int step = 0; step < 4000; step++) {
		int a = (int)(t_rand() % PAGES), n = 1 + (int)(t_rand() % (t_rand() % 4 ? 8 : PAGES));
		if (a + n > PAGES)
			n = PAGES - a;
		uint64_t va = base + (uint64_t)a * K4, pa = (t_rand() % 4096) * K4;
		uint32_t opts = some_opts[t_rand() % 5];
		if (t_rand() % 3) {
			T_EQ(shadow_map(&s, va, (uint64_t)n * K4, pa, opts), 0);
			for (int i = 0; i < n; i++) {
				m.pa[a + i] = pa + (uint64_t)i * K4 + 1;
				m.opts[a + i] = opts;
			}
		} else {
			T_EQ(shadow_unmap(&s, va, (uint64_t)n * K4), 0);
			for (int i = 0; i < n; i++)
				m.pa[a + i] = 0;
		}
		if (step % 50 == 0 || step > 3900)
			compare(&s, &m, base);
		if (step == 2000) {
			shadow_merge(&s);
			compare(&s, &m, base);
		}
	}
	T_EQ(shadow_map(&s, base + 0x800, K4, 0, PT_R), -EINVAL);
	T_EQ(shadow_map(&s, base, K4, 0, PT_W | PT_X | PT_R), -EINVAL);
	T_EQ(shadow_unmap(&s, base, 0), -EINVAL);
	shadow_clear(&s);
	T_EQ(s.count, 0);
	T_CHECK(!shadow_first(&s), "empty after clear");
	shadow_destroy(&s);
}

/* n single-page maps, alternating permissions, in a scattered order; then
 * every other page unmapped. O(log n) each: a quadratic shadow takes
 * minutes here. */
static void test_scale(unsigned n)
{
	struct shadow s;
	T_EQ(shadow_init(&s, 16), 0);
	clock_t t0 = clock();
	for (unsigned i = 0; i < n; i++) {
		unsigned j = (unsigned)(((unsigned long long)i * 2654435761u) % n);   /* n not a multiple of it */
		if (shadow_map(&s, (uint64_t)j * K4, K4, (uint64_t)j * K4, j % 2 ? PT_R : PT_R | PT_W))
			break;
	}
	T_EQ(s.count, n);
	for (unsigned j = 0; j < n; j += 2)
		shadow_unmap(&s, (uint64_t)j * K4, K4);
	T_EQ(s.count, n / 2);
	uint64_t pa;
	uint32_t opts;
	T_EQ(shadow_lookup(&s, (uint64_t)(n - 1) * K4, &pa, &opts), 0);
	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	printf("shadow: %u single-page maps and %u unmaps in %.2f s\n", n, n / 2, secs);
	T_CHECK(secs < 20, "%u maps took %.1f s", n, secs);
	shadow_destroy(&s);
}

struct env {
	struct pool pool;
	struct pt pt;
	struct shadow sh;
	char buf[256];
};

static void env_open(struct env *e)
{
	T_EQ(pool_init_mmap(&e->pool, 256, 0x100000000ull), 0);
	T_EQ(pt_init(&e->pt, &e->pool, 4, true), 0);
	T_EQ(shadow_init(&e->sh, 64), 0);
}

static void env_close(struct env *e)
{
	pt_destroy(&e->pt);
	pool_destroy(&e->pool);
	shadow_destroy(&e->sh);
}

static uint64_t *pte_of(struct env *e, uint64_t va)
{
	uint64_t *t = e->pt.root;
	for (int l = 3; l > 0; l--)
		t = pt_child(&e->pt, t[pt_index(va, l)]);
	return &t[pt_index(va, 0)];
}

static void expect_rebuild(struct env *e, const char *want, const char *what)
{
	const char *f = check_rebuild(&e->pt, &e->sh, e->buf, sizeof(e->buf));
	if (!want)
		T_CHECK(!f, "%s: %s", what, f);
	else
		T_CHECK(f && strstr(f, want), "%s: got '%s', want '%s'", what, f ? f : "ok", want);
}

static void test_rebuild(void)
{
	struct env e;

	/* Right translation, wrong shape: a page table where a 2 MiB leaf goes. */
	env_open(&e);
	T_EQ(pt_map(&e.pt, M2, M2 / 2, 4 * M2, PT_R | PT_W), 0);
	T_EQ(pt_map(&e.pt, M2 + M2 / 2, M2 / 2, 4 * M2 + M2 / 2, PT_R), 0);
	T_EQ(shadow_map(&e.sh, M2, M2, 4 * M2, PT_R | PT_W), 0);
	for (uint64_t va = M2 + M2 / 2; va < 2 * M2; va += K4)
		*pte_of(&e, va) |= PTE_RW;
	expect_rebuild(&e, "canonical: leaf va 0x200000 size 0x1000", "uniform page table");
	env_close(&e);

	/* A leaf that differs, in a chunk far from the first one. */
	env_open(&e);
	T_EQ(pt_map(&e.pt, 5 * G1, 3 * K4, 0, PT_R), 0);
	T_EQ(shadow_map(&e.sh, 5 * G1, 3 * K4, 0, PT_R), 0);
	T_EQ(pt_map(&e.pt, UPPER + 7 * G1, M2, 0, PT_R), 0);
	T_EQ(shadow_map(&e.sh, UPPER + 7 * G1, M2, 0, PT_R), 0);
	expect_rebuild(&e, NULL, "two chunks");
	*pte_of(&e, 5 * G1 + K4) += K4;
	expect_rebuild(&e, "leaf va 0x140001000 size 0x1000", "pa changed");
	*pte_of(&e, 5 * G1 + K4) -= K4;
	*pte_of(&e, 5 * G1 + 2 * K4) = 0;
	expect_rebuild(&e, "leaf va 0x140002000 size 0x1000", "page missing in the tables");
	env_close(&e);

	/* The tables map what the shadow does not (a chunk of its own). */
	env_open(&e);
	T_EQ(pt_map(&e.pt, G1, K4, 0, PT_R), 0);
	T_EQ(shadow_map(&e.sh, G1, K4, 0, PT_R), 0);
	T_EQ(pt_map(&e.pt, 3 * G1, G1, 0, PT_R), 0);
	expect_rebuild(&e, "leaf at level 2 va 0xc0000000, where the shadow maps nothing", "extra 1 GiB leaf");
	T_EQ(pt_unmap(&e.pt, 3 * G1, G1), 0);
	expect_rebuild(&e, NULL, "extra leaf gone");
	/* And the shadow maps what the tables do not. */
	T_EQ(shadow_map(&e.sh, 2 * G1 - M2, 2 * M2, 0, PT_R), 0);
	T_EQ(pt_map(&e.pt, 2 * G1 - M2, M2, 0, PT_R), 0);
	expect_rebuild(&e, "leaf va 0x80000000 size 0x200000", "missing in the tables");
	T_EQ(pt_map(&e.pt, 2 * G1, M2, M2, PT_R), 0);
	expect_rebuild(&e, NULL, "a run across two chunks");
	env_close(&e);

	/* A window across the two canonical halves, and many 1 GiB leaves. */
	env_open(&e);
	uint64_t low = 0x800000000000ull - 3 * G1;
	T_EQ(pt_map(&e.pt, low, 3 * G1, 0, PT_R), 0);
	T_EQ(shadow_map(&e.sh, low, 3 * G1, 0, PT_R), 0);
	T_EQ(pt_map(&e.pt, UPPER, 2 * G1 + K4, G1, PT_R), 0);
	T_EQ(shadow_map(&e.sh, UPPER, 2 * G1 + K4, G1, PT_R), 0);
	T_EQ(pt_map(&e.pt, 64 * G1, 1024 * G1, 0, PT_R | PT_W), 0);
	T_EQ(shadow_map(&e.sh, 64 * G1, 1024 * G1, 0, PT_R | PT_W), 0);
	expect_rebuild(&e, NULL, "across the halves");
	T_EQ(pt_unmap(&e.pt, UPPER + G1, K4), 0);
	expect_rebuild(&e, "leaf va 0xffff800040001000 size 0x1000", "missing page in the upper half");
	T_EQ(shadow_unmap(&e.sh, UPPER + G1, K4), 0);
	expect_rebuild(&e, NULL, "both unmapped");
	uint64_t *pdpte = &pt_child(&e.pt, e.pt.root[pt_index(0, 3)])[pt_index(100 * G1, 2)];
	*pdpte = 0;
	expect_rebuild(&e, "leaf va 0x1900000000 size 0x40000000", "a 1 GiB leaf gone");
	env_close(&e);
}

int main(void)
{
	test_random(0x7fffffe00000ull);
	test_random(UPPER);
	test_random(0x40000000ull);
	test_scale(200000);
	test_rebuild();
	return t_exit();
}
