/* The shootdown protocol (kvmrt/shootdown.c) and the pool's epochs, with
 * plain threads standing in for vCPUs: runs everywhere, /dev/kvm or not.
 *
 * A "vCPU" thread loops: sd_enter (flushing its private cache of table
 * pointers when told to), then "runs guest code": it walks a shared root
 * slot to a table page, caches that pointer, and keeps reading the page
 * through the cached pointer, checking the tag the page carries, until it is
 * kicked (a flag standing in for immediate_exit + signal) or decides to
 * leave for a while. The initiator swaps the table page for a new one,
 * retires the old (pool_give on a deferred pool), shoots down, reclaims, and
 * at once takes the reclaimed pages again and writes new tags into them: a
 * vCPU still reading through a stale pointer would see a wrong tag.
 * Deterministic cases check the single steps, and that skipping the
 * shootdown is caught. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../core/tests/t.h"
#include "../shootdown.h"
#include "pool.h"

#define NV 4
#define ROUNDS 300

struct sim {
	struct pool pool;
	pthread_mutex_t lock;              /* the engine's lock */
	_Atomic(uint64_t *) root;          /* the one "entry": the current table page */
	struct sd_cpu cpu[NV];
	_Atomic int exit_req[NV];          /* immediate_exit */
	_Atomic int stop;
	_Atomic uint64_t bad, reads, flushes, leaves;
	_Atomic uint64_t next_tag;
};

static bool kick(void *ctx, unsigned i)
{
	struct sim *s = ctx;
	atomic_store(&s->exit_req[i], 1);
	return true;
}

/* Tag layout: word 1 = tag, word 2 = ~tag (a torn or reused page fails). */
static void tag_page(struct sim *s, uint64_t *pg)
{
	uint64_t t = atomic_fetch_add(&s->next_tag, 1);
	__atomic_store_n(&pg[1], t, __ATOMIC_RELAXED);
	__atomic_store_n(&pg[2], ~t, __ATOMIC_RELAXED);
}

struct vcpu_arg {
	struct sim *s;
	unsigned id;
};

static void *vcpu_main(void *p)
{
	struct vcpu_arg *a = p;
	struct sim *s = a->s;
	struct sd_cpu *c = &s->cpu[a->id];
	uint64_t *cached = NULL, cached_tag = 0;
	unsigned long iter = 0;

	while (!atomic_load(&s->stop)) {
		uint64_t epoch;
		atomic_store(&s->exit_req[a->id], 0);
		if (sd_enter(c, &s->pool, &epoch)) {
			cached = NULL; /* the flush point */
			sd_flushed(c, epoch);
			atomic_fetch_add(&s->flushes, 1);
		}
		/* "Guest code": walk once if nothing is cached, then use the cache. */
		for (int k = 0; k < 200 && !atomic_load(&s->exit_req[a->id]); k++) {
			if (!cached) {
				cached = atomic_load(&s->root);
				cached_tag = __atomic_load_n(&cached[1], __ATOMIC_RELAXED);
			}
			uint64_t t = __atomic_load_n(&cached[1], __ATOMIC_RELAXED);
			uint64_t u = __atomic_load_n(&cached[2], __ATOMIC_RELAXED);
			if (t != cached_tag || u != ~cached_tag)
				atomic_fetch_add(&s->bad, 1);
			atomic_fetch_add(&s->reads, 1);
		}
		if (++iter % 7 == 0) {
			sd_leave(c);
			atomic_fetch_add(&s->leaves, 1);
			sched_yield();
		}
	}
	sd_leave(c);
	return NULL;
}

/* The pool takes back only pages that are zero or whose table count says
 * otherwise (the engine keeps that); these pages are not tables, so clear
 * the ones about to be reclaimed: no vCPU may read them any more (in the
 * broken runs, one that still does reads zero, not its tag). */
static void clear_reclaimable(struct pool *p, uint64_t epoch)
{
	for (uint32_t i = 0; i < p->live.count; i++) {
		uint32_t slot = (p->live.head + i) % p->capacity;
		if (p->live.ring_epoch[slot] >= epoch)
			break;
		memset(p->base + (size_t)p->live.ring[slot] * 4096, 0, 4096);
	}
}

/* Swap the table page, retire the old one, shoot down, reclaim, reuse. */
static void initiator_round(struct sim *s, bool shootdown, uint64_t *kicks)
{
	uint64_t *fresh, *old;
	pthread_mutex_lock(&s->lock);
	if (pool_take(&s->pool, &fresh)) {
		pthread_mutex_unlock(&s->lock);
		T_CHECK(0, "pool ran out (retired %u)", pool_retired(&s->pool));
		return;
	}
	tag_page(s, fresh);
	old = atomic_exchange(&s->root, fresh);
	pool_give(&s->pool, old); /* retired: keeps its tag while vCPUs may read it */
	pthread_mutex_unlock(&s->lock);
	uint64_t epoch = shootdown ? sd_shootdown(s->cpu, NV, &s->pool, NULL, kick, s, 200, kicks) : UINT64_MAX;
	pthread_mutex_lock(&s->lock);
	clear_reclaimable(&s->pool, epoch);
	pool_reclaim(&s->pool, epoch);
	/* Reuse at once: take free pages and scribble new tags into them (they
	 * are retired again and come back in a later round). */
	uint64_t *pages[8];
	int n = 0;
	while (n < 8 && pool_take(&s->pool, &pages[n]) == 0) {
		tag_page(s, pages[n]);
		n++;
	}
	while (n > 0)
		pool_give(&s->pool, pages[--n]);
	pthread_mutex_unlock(&s->lock);
}

static void test_threads(void)
{
	static struct sim s;
	struct vcpu_arg args[NV];
	pthread_t th[NV];
	uint64_t *first, kicks = 0;

	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	T_EQ(pool_init_mmap(&s.pool, 64, 0x100000000ull), 0);
	T_EQ(pool_defer(&s.pool), 0);
	for (unsigned i = 0; i < NV; i++)
		sd_cpu_init(&s.cpu[i]);
	T_EQ(pool_take(&s.pool, &first), 0);
	tag_page(&s, first);
	atomic_store(&s.root, first);
	for (unsigned i = 0; i < NV; i++) {
		args[i] = (struct vcpu_arg){ &s, i };
		T_EQ(pthread_create(&th[i], NULL, vcpu_main, &args[i]), 0);
	}
	while (atomic_load(&s.flushes) < NV)
		sched_yield();
	for (int r = 0; r < ROUNDS; r++) {
		initiator_round(&s, true, &kicks);
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
	atomic_store(&s.stop, 1);
	for (unsigned i = 0; i < NV; i++)
		pthread_join(th[i], NULL);
	/* Everyone is out: one more shootdown takes everything back. */
	uint64_t last = sd_shootdown(s.cpu, NV, &s.pool, NULL, kick, &s, 200, &kicks);
	clear_reclaimable(&s.pool, last);
	pool_reclaim(&s.pool, last);
	printf("threads: %d shootdowns, %llu kicks, %llu reads, %llu flush points, %llu leaves, %llu bad reads\n",
	       ROUNDS, (unsigned long long)kicks, (unsigned long long)s.reads, (unsigned long long)s.flushes,
	       (unsigned long long)s.leaves, (unsigned long long)s.bad);
	T_EQ(s.bad, 0);
	T_CHECK(s.reads > 0 && s.flushes >= ROUNDS / 2 && kicks > 0, "the vCPUs ran (%llu reads, %llu flushes, %llu kicks)",
		(unsigned long long)s.reads, (unsigned long long)s.flushes, (unsigned long long)kicks);
	T_EQ(pool_retired(&s.pool), 0);
	T_EQ(s.pool.used, 1);
	pool_destroy(&s.pool);
	pthread_mutex_destroy(&s.lock);
}

/* The steps one at a time. */
static void test_steps(void)
{
	struct pool p;
	struct sd_cpu c[2];
	uint64_t e, kicks = 0, *a, *b;
	struct sim dummy;

	memset(&dummy, 0, sizeof(dummy));
	T_EQ(pool_init_mmap(&p, 8, 0x100000000ull), 0);
	T_EQ(pool_defer(&p), 0);
	sd_cpu_init(&c[0]);
	sd_cpu_init(&c[1]);
	/* The first entry always flushes. */
	T_CHECK(sd_enter(&c[0], &p, &e), "first entry must flush");
	sd_flushed(&c[0], e);
	T_CHECK(!sd_enter(&c[0], &p, &e), "no flush while the epoch stands");
	/* A vCPU that is out does not hold a shootdown up, and flushes on
	 * its next entry. */
	T_EQ(pool_take(&p, &a), 0);
	T_EQ(pool_take(&p, &b), 0);
	pool_give(&p, a);
	dummy.exit_req[0] = 0;
	/* c[0] is in and answers only when kicked: run its answer by hand. */
	sd_leave(&c[0]);
	uint64_t se = sd_shootdown(c, 2, &p, NULL, kick, &dummy, 100, &kicks);
	T_EQ(kicks, 0);
	T_EQ(pool_reclaim(&p, se), 1);
	T_CHECK(sd_enter(&c[1], &p, &e), "c1 flushes on entry");
	T_CHECK(sd_enter(&c[0], &p, &e), "c0 flushes on entry after the epoch moved");
	sd_flushed(&c[0], e);
	sd_flushed(&c[1], e);
	/* Skipping the shootdown (reclaim at once) gives back a page that an
	 * in-guest vCPU may still hold: exactly what the epochs forbid. */
	pool_give(&p, b);
	T_EQ(pool_reclaim(&p, pool_epoch(&p)), 0); /* same epoch: not yet */
	T_EQ(pool_reclaim(&p, UINT64_MAX), 1);     /* the bug */
	T_CHECK(!pool_pa_in_use(&p, pool_pa(&p, b)), "b freed under a running vCPU");
	pool_destroy(&p);
}

/* A broken initiator (no shootdown) against the threads: the tag check
 * must see stale reads at least once in a few tries. */
static void test_broken_caught(void)
{
	static struct sim s;
	struct vcpu_arg args[NV];
	pthread_t th[NV];
	uint64_t *first;

	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	T_EQ(pool_init_mmap(&s.pool, 64, 0x100000000ull), 0);
	T_EQ(pool_defer(&s.pool), 0);
	for (unsigned i = 0; i < NV; i++)
		sd_cpu_init(&s.cpu[i]);
	T_EQ(pool_take(&s.pool, &first), 0);
	tag_page(&s, first);
	atomic_store(&s.root, first);
	for (unsigned i = 0; i < NV; i++) {
		args[i] = (struct vcpu_arg){ &s, i };
		T_EQ(pthread_create(&th[i], NULL, vcpu_main, &args[i]), 0);
	}
	for (int r = 0; r < 20000 && !atomic_load(&s.bad); r++)
		initiator_round(&s, false, NULL);
	atomic_store(&s.stop, 1);
	for (unsigned i = 0; i < NV; i++)
		pthread_join(th[i], NULL);
	printf("broken initiator (no shootdown): %llu stale reads seen\n", (unsigned long long)s.bad);
	T_CHECK(s.bad > 0, "reclaiming without a shootdown went unnoticed");
	pool_destroy(&s.pool);
	pthread_mutex_destroy(&s.lock);
}

int main(void)
{
	test_steps();
	test_threads();
	test_broken_caught();
	return t_exit();
}
