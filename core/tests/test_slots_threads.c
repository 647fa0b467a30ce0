/* test_slots_threads: several vCPU-like threads fault on overlapping fault
 * blocks at once, and a fifth thread interrupts them with signals whose
 * handler faults too (the slot lock is taken with signals blocked, so a
 * handler never spins on a lock its own thread holds). Each round ends with
 * exactly one slot per touched block (the recorder, which has KVM's
 * semantics and no lock of its own, must never answer EEXIST), entries for
 * every touched block, and check_slots passing. Built twice: ASan+UBSan by
 * core/tests/build.mk and ThreadSanitizer by core/tests/slots.mk.
 * Debug: ROUNDS/ITERS below; a TSan report names the racing accesses. */
#include "check.h"
#include "physmap.h"
#include "pool.h"
#include "pt.h"
#include "slots.h"
#include "slots_test.h"
#include "t.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define THREADS 4
#define ROUNDS 16
#define ITERS 20000
#define MiB (1ull << 20)

static struct recorder rec;
static struct slot_env env;
static pthread_barrier_t start;
static int errors;          /* __atomic: faults that failed */
static int handler_faults;  /* __atomic: faults serviced from the signal handler */
static int running;         /* __atomic: workers still going */

/* Every kind, misaligned edges, and a whole GiB of 2 MiB blocks whose PA is
 * GiB-congruent, so that filling it collapses into one 1 GiB leaf while
 * other threads keep mapping next to it. */
static const struct region host[] = {
	{ 0x400000, 0x5000, REGION_RO },
	{ 0x405000, 0x3fb000, REGION_NORMAL },
	{ 0x800000, 0x1000000, REGION_EXCLUDED },
	{ 0x1800000, 0x200000, REGION_MMIO },
	{ 0x1a00000, 0x3e600000, REGION_EXCLUDED },
	{ 0x40000000, 0x40000000, REGION_NORMAL },
	{ 0x80000000, 0x7f0000000000ull - 0x80000000, REGION_EXCLUDED },
	{ 0x7f0000003000ull, 0x800000, REGION_RO },
	{ 0x7f0000803000ull, (1ull << 47) - 0x7f0000803000ull, REGION_EXCLUDED },
};
#define HOST_N (sizeof(host) / sizeof(host[0]))

/* Addresses threads fault on: inside non-excluded host regions or the
 * NORMAL gaps the layout fills in. */
static uint64_t pick_va(uint64_t *rng)
{
	static const struct { uint64_t va, len; } spots[] = {
		{ 0x1000, 0x3ff000 }, { 0x400000, 0x400000 }, { 0x1800000, 0x200000 },
		{ 0x40000000, 0x40000000 }, { 0x7f0000000000ull, 0x803000 },
	};
	uint64_t x = *rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*rng = x;
	unsigned i = (unsigned)(x % 5);
	return spots[i].va + ((x >> 8) % spots[i].len & ~0xfffull);
}

static void fault_one(uint64_t *rng)
{
	struct slots_result r;
	uint64_t va = pick_va(rng), pa;
	int err = slots_fault(&env.slots, va, &r);

	struct phys_block b;
	if (err || physmap_translate(&env.pm, va, &pa) || physmap_fault_block(&env.pm, pa, &b))
		__atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
	else if (b.kind != REGION_MMIO && !slots_has_slot(&env.slots, pa))
		__atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);   /* published before we returned */
	else if (b.kind == REGION_MMIO && r.outcome != SLOTS_MMIO && r.outcome != SLOTS_ALREADY)
		__atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
}

static void on_signal(int sig)
{
	static _Thread_local uint64_t rng;
	(void)sig;
	if (!rng)
		rng = 0x853c49e6748fea9bull ^ (uint64_t)(uintptr_t)&rng;
	fault_one(&rng);
	__atomic_fetch_add(&handler_faults, 1, __ATOMIC_RELAXED);
}

static void *worker(void *arg)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(uintptr_t)arg + 1;

	pthread_barrier_wait(&start);
	for (int i = 0; i < ITERS; i++) {
		fault_one(&rng);
		if (i % 64 == 0) {   /* a range over several blocks, overlapping others' */
			uint64_t pa;
			if (!physmap_translate(&env.pm, 0x40000000 + (rng % 64) * 2 * MiB, &pa) &&
			    slots_map_physical(&env.slots, pa, 8 * MiB, NULL))
				__atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
		}
	}
	__atomic_fetch_sub(&running, 1, __ATOMIC_RELEASE);
	return NULL;
}

struct touched {
	uint64_t mmio, slotted;
};

static int count_block(void *ctx, const struct phys_block *b)
{
	struct touched *t = ctx;
	struct pt_leaf leaf;
	if (pt_lookup(&env.pt, b->va, &leaf) != 0)
		return 0;
	if (b->kind == REGION_MMIO)
		t->mmio++;
	else
		t->slotted++;
	return 0;
}

static void run_round(int round)
{
	pthread_t th[THREADS];
	char buf[256];

	recorder_reset(&rec);
	if (!T_EQ(env_init(&env, &(struct physmap_config){ .block_size = 2 * MiB, .reserved = 1 }, host, HOST_N, 0,
			   4096, recorder_set, &rec), 0))
		return;
	__atomic_store_n(&running, THREADS, __ATOMIC_RELAXED);
	T_EQ(pthread_barrier_init(&start, NULL, THREADS + 1), 0);
	for (uintptr_t i = 0; i < THREADS; i++)
		T_EQ(pthread_create(&th[i], NULL, worker, (void *)(i + 1 + (uintptr_t)round * THREADS)), 0);
	pthread_barrier_wait(&start);
	/* Interrupt the workers while they fault: the handler faults too. */
	for (unsigned k = 0; __atomic_load_n(&running, __ATOMIC_ACQUIRE); k++) {
		if (__atomic_load_n(&running, __ATOMIC_ACQUIRE) == THREADS)
			pthread_kill(th[k % THREADS], SIGUSR1);
		sched_yield();
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);

	struct touched t = { 0, 0 };
	physmap_for_each_block(&env.pm, count_block, &t);
	T_EQ(__atomic_load_n(&errors, __ATOMIC_RELAXED), 0);
	T_EQ(rec.eexist, 0);                 /* never two creates for one block */
	T_EQ(rec.count, env.slots.count);    /* every create reached KVM once */
	T_EQ(t.slotted, env.slots.count);    /* one slot per touched block */
	T_EQ(env.slots.mmio_blocks, t.mmio);
	T_EQ(recorder_verify(&rec, &env.slots), 0);
	const char *bad = check_slots(&env.slots, buf, sizeof(buf));
	T_CHECK(bad == NULL, "round %d: %s", round, bad ? bad : "");
	T_CHECK(env.pool.used <= env.bound, "used %u above bound %llu", env.pool.used,
		(unsigned long long)env.bound);
	if (round == 0)
		printf("round 0: %u slots, %llu mmio blocks, pool %u/%llu, %d faults from the handler so far\n",
		       env.slots.count, (unsigned long long)t.mmio, env.pool.used, (unsigned long long)env.bound,
		       __atomic_load_n(&handler_faults, __ATOMIC_RELAXED));
	env_destroy(&env);
}

int main(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	for (int round = 0; round < ROUNDS; round++)
		run_round(round);
	printf("%d faults serviced from the signal handler\n", __atomic_load_n(&handler_faults, __ATOMIC_RELAXED));
	T_CHECK(__atomic_load_n(&handler_faults, __ATOMIC_RELAXED) > 0, "no signal reached a worker");
	return t_exit();
}
