/* Live tables: the pool's deferred reclamation (retire, epochs, reclaim) and
 * the vCPU TLB / paging-structure-cache model (core/tlb.c) that the fuzzers
 * use as an oracle. Each case builds a small tree, lets simulated vCPUs walk
 * it, changes the tables and asks the model; the "free immediately" cases
 * play the bug the retire list exists for and expect the model to name it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "pool.h"
#include "pt.h"
#include "t.h"
#include "tlb.h"

#define K4 0x1000ull
#define M2 0x200000ull
#define RW (PT_R | PT_W)

static char buf[512];

struct env {
	struct pool pool;
	struct pt pt;
	struct tlb tlb;
};

static void env_init(struct env *e, uint32_t pages, bool defer, unsigned vcpus)
{
	T_EQ(pool_init_mmap(&e->pool, pages, 0x100000000ull), 0);
	if (defer)
		T_EQ(pool_defer(&e->pool), 0);
	T_EQ(pt_init(&e->pt, &e->pool, 4, true), 0);
	T_EQ(tlb_init(&e->tlb, &e->pt, vcpus), 0);
}

static void env_fini(struct env *e)
{
	pt_destroy(&e->pt);
	pool_reclaim(&e->pool, UINT64_MAX);
	T_EQ(e->pool.used, 0);
	pool_destroy(&e->pool);
}

static int walk(struct env *e, unsigned v, uint64_t va, struct tlb_tr *tr, enum tlb_source *src)
{
	return tlb_walk(&e->tlb, v, va, tr, src, buf, sizeof(buf));
}

static const char *checked(struct env *e)
{
	const char *bad = check_tables(&e->pt, NULL, 0, buf, sizeof(buf));
	return bad ? bad : tlb_check(&e->tlb, buf, sizeof(buf));
}

/* Retire, epochs, reclaim: the bookkeeping alone. */
static void test_pool_retire(void)
{
	struct pool p;
	uint64_t *a, *b, *c;
	T_EQ(pool_init_mmap(&p, 8, 0x100000000ull), 0);
	T_EQ(pool_epoch(&p), 0);
	T_EQ(pool_defer(&p), 0);
	T_EQ(pool_defer(&p), 0); /* twice is fine */
	T_EQ(pool_epoch(&p), 1);
	T_EQ(pool_take(&p, &a), 0);
	T_EQ(pool_take(&p, &b), 0);
	T_EQ(pool_take(&p, &c), 0);
	a[5] = 0x1234; /* a retired page stays untouched: a vCPU may read it */
	pool_give(&p, a);
	T_EQ(p.used, 3);
	T_EQ(pool_retired(&p), 1);
	T_CHECK(pool_pa_retired(&p, pool_pa(&p, a)), "a is retired");
	T_CHECK(!pool_pa_retired(&p, pool_pa(&p, b)), "b is not");
	T_EQ(a[5], 0x1234);
	T_EQ(pool_epoch_advance(&p), 2);
	pool_give(&p, b); /* epoch 2 */
	T_EQ(pool_reclaim(&p, 1), 0);  /* nothing before epoch 1 */
	a[5] = 0; /* the engine gives back only cleared (or counted) tables */
	T_EQ(pool_reclaim(&p, 2), 1);  /* a only */
	T_EQ(p.used, 2);
	T_CHECK(!pool_pa_retired(&p, pool_pa(&p, a)), "a is back");
	T_CHECK(pool_pa_retired(&p, pool_pa(&p, b)), "b still waits");
	T_EQ(pool_reclaim(&p, 3), 1);
	T_EQ(pool_retired(&p), 0);
	T_EQ(p.live.reclaimed, 2);
	T_EQ(p.live.peak, 2);
	/* Reclaimed pages come back zeroed. */
	uint64_t *d;
	for (int i = 0; i < 2; i++) {
		T_EQ(pool_take(&p, &d), 0);
		T_CHECK(d[5] == 0, "page %d zero after reclaim", i);
	}
	/* Every page retired at once: the list holds them all. */
	pool_give(&p, c);
	pool_give(&p, d);
	T_EQ(pool_reclaim(&p, UINT64_MAX), 2);
	pool_destroy(&p);
}

/* A collapse under a vCPU that walked the table: retired, so safe; reused
 * only after that vCPU flushed. */
static void test_collapse_retired(void)
{
	struct env e;
	struct tlb_tr tr;
	enum tlb_source src;
	env_init(&e, 64, true, 2);
	T_EQ(pt_map(&e.pt, M2, K4, M2, RW), 0);             /* a 4K table under the PD */
	T_EQ(walk(&e, 0, M2, &tr, &src), 0);
	T_EQ(tr.pa, M2);
	T_EQ(src, TLB_FROM_TABLES);
	T_EQ(walk(&e, 0, M2, &tr, &src), 0);
	T_EQ(src, TLB_FROM_TLB);
	T_EQ(walk(&e, 1, M2, &tr, &src), 0);
	uint32_t used = e.pool.used;
	T_EQ(pt_map(&e.pt, M2 + K4, M2 - K4, M2 + K4, RW), 0); /* uniform: one 2M leaf */
	T_EQ(pool_retired(&e.pool), 1);
	T_EQ(e.pool.used, used);
	T_CHECK(!checked(&e), "%s", buf);
	/* More maps take fresh pages, never the retired one. */
	T_EQ(pt_map(&e.pt, 5 * M2, K4, 9 * M2, RW), 0);
	T_CHECK(!checked(&e), "%s", buf);
	/* vCPU 0 flushes: not enough, vCPU 1 may still hold the pointer. */
	uint64_t e0 = pool_epoch_advance(&e.pool);
	tlb_flush(&e.tlb, 0);
	uint64_t e1 = pool_epoch(&e.pool) - 1; /* vCPU 1's last flush: before */
	T_EQ(pool_reclaim(&e.pool, e0 < e1 ? e0 : e1), 0);
	T_EQ(pool_retired(&e.pool), 1);
	tlb_flush(&e.tlb, 1);
	e1 = pool_epoch(&e.pool);
	T_EQ(pool_reclaim(&e.pool, e0 < e1 ? e0 : e1), 1);
	T_CHECK(!checked(&e), "%s", buf);
	env_fini(&e);
}

/* The bug deferral prevents: the page goes back at once (reclaim without a
 * flush plays "free immediately") and the next split reuses it while a vCPU
 * still caches a pointer to it. */
static void test_free_immediately_caught(void)
{
	struct env e;
	struct tlb_tr tr;
	enum tlb_source src;
	env_init(&e, 64, true, 1);
	T_EQ(pt_map(&e.pt, M2, K4, M2, RW), 0);
	T_EQ(walk(&e, 0, M2, &tr, &src), 0);
	T_EQ(pt_map(&e.pt, M2 + K4, M2 - K4, M2 + K4, RW), 0);
	pool_reclaim(&e.pool, UINT64_MAX);           /* no flush: the bug */
	const char *bad = tlb_check_tables(&e.tlb, buf, sizeof(buf));
	T_CHECK(bad && strstr(bad, "freed the page"), "freed page not seen: %s", bad ? bad : "(none)");
	T_EQ(pt_map(&e.pt, 7 * M2, K4, 3 * M2, RW), 0);  /* reuses it */
	bad = tlb_check_tables(&e.tlb, buf, sizeof(buf));
	T_CHECK(bad && strstr(bad, "reused the page"), "reuse not seen: %s", bad ? bad : "(none)");
	/* A walk that could go through that pointer fails too. */
	T_EQ(walk(&e, 0, M2 + 5 * K4, &tr, &src), -EFAULT);
	T_CHECK(strstr(buf, "may still walk table page") != NULL, "%s", buf);
	tlb_flush(&e.tlb, 0);
	T_CHECK(!tlb_check(&e.tlb, buf, sizeof(buf)), "%s", buf);
	T_EQ(walk(&e, 0, M2 + 5 * K4, &tr, &src), 0);
	T_EQ(tr.pa, M2 + 5 * K4);
	env_fini(&e);
}

/* Without deferral the pool reuses at once: the model sees it as well. */
static void test_no_defer_caught(void)
{
	struct env e;
	struct tlb_tr tr;
	enum tlb_source src;
	env_init(&e, 64, false, 1);
	T_EQ(pt_map(&e.pt, M2, K4, M2, RW), 0);
	T_EQ(walk(&e, 0, M2, &tr, &src), 0);
	T_EQ(pt_unmap(&e.pt, M2, K4), 0); /* empty: freed */
	T_CHECK(tlb_check_tables(&e.tlb, buf, sizeof(buf)) != NULL, "freed table not seen");
	/* and the translation is stale too */
	T_CHECK(tlb_check_translations(&e.tlb, buf, sizeof(buf)) != NULL, "stale translation not seen");
	tlb_flush_all(&e.tlb);
	T_CHECK(!tlb_check(&e.tlb, buf, sizeof(buf)), "%s", buf);
	env_fini(&e);
}

/* The shootdown rule: unmapped or downgraded translations must be flushed;
 * upgrades need not be. */
static void test_translations(void)
{
	struct env e;
	struct tlb_tr tr;
	enum tlb_source src;
	env_init(&e, 64, true, 2);
	T_EQ(pt_map(&e.pt, 0x40000000, 4 * K4, 0x80000000, PT_R), 0);
	T_EQ(walk(&e, 0, 0x40000000, &tr, &src), 0);
	T_EQ(tr.opts, PT_R);
	T_EQ(walk(&e, 1, 0x40001000, &tr, &src), 0);
	T_EQ(pt_map(&e.pt, 0x40000000, 4 * K4, 0x80000000, RW), 0); /* upgrade */
	T_CHECK(!tlb_check_translations(&e.tlb, buf, sizeof(buf)), "%s", buf);
	T_EQ(walk(&e, 0, 0x40002000, &tr, &src), 0);
	T_EQ(tr.opts, RW);
	T_EQ(pt_map(&e.pt, 0x40002000, K4, 0x80002000, PT_R), 0); /* downgrade */
	const char *bad = tlb_check_translations(&e.tlb, buf, sizeof(buf));
	T_CHECK(bad && strstr(bad, "vcpu 0 may still use va 0x40002000"), "%s", bad ? bad : "(none)");
	T_EQ(walk(&e, 0, 0x40002000, &tr, &src), -EFAULT);
	tlb_flush(&e.tlb, 0);
	T_CHECK(!tlb_check_translations(&e.tlb, buf, sizeof(buf)), "%s", buf);
	T_EQ(pt_map(&e.pt, 0x40001000, K4, 0x90000000, PT_R), 0); /* new PA */
	T_CHECK(tlb_check_translations(&e.tlb, buf, sizeof(buf)) != NULL, "remap not seen");
	tlb_flush(&e.tlb, 1);
	T_EQ(pt_unmap(&e.pt, 0x40000000, 4 * K4), 0);
	T_CHECK(!tlb_check(&e.tlb, buf, sizeof(buf)), "%s", buf);
	T_EQ(walk(&e, 1, 0x40000000, &tr, &src), -ENOENT);
	T_EQ(walk(&e, 2, 0x40000000, &tr, &src), -EINVAL);
	T_EQ(walk(&e, 0, 0x800000000000ull, &tr, &src), -EINVAL);
	env_fini(&e);
}

/* Many walks: the caches stay bounded and the checks stay cheap. */
static void test_bounded(void)
{
	struct env e;
	struct tlb_tr tr;
	enum tlb_source src;
	env_init(&e, 4096, true, TLB_MAX_VCPUS);
	for (uint64_t i = 0; i < 200; i++)
		T_EQ(pt_map(&e.pt, i * M2 + K4 * (i % 5), K4, i * M2, RW), 0);
	for (unsigned v = 0; v < TLB_MAX_VCPUS; v++)
		for (uint64_t i = 0; i < 200; i++)
			T_EQ(walk(&e, v, i * M2 + K4 * (i % 5), &tr, &src), 0);
	for (unsigned v = 0; v < TLB_MAX_VCPUS; v++) {
		T_CHECK(e.tlb.vcpu[v].nptr <= TLB_PTRS && e.tlb.vcpu[v].ntr <= TLB_TRS, "vcpu %u over", v);
		T_EQ(e.tlb.vcpu[v].walks, 200);
	}
	T_CHECK(!checked(&e), "%s", buf);
	T_EQ(tlb_init(&e.tlb, &e.pt, 0), -EINVAL);
	T_EQ(tlb_init(&e.tlb, &e.pt, TLB_MAX_VCPUS + 1), -EINVAL);
	env_fini(&e);
}

int main(void)
{
	test_pool_retire();
	test_collapse_retired();
	test_free_immediately_caught();
	test_no_defer_caught();
	test_translations();
	test_bounded();
	return t_exit();
}
