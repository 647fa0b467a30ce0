/* test_slots: the slot engine against a recorder callback with KVM's
 * semantics (KVM-NOTES.md: EEXIST for an overlap with another id, EINVAL for
 * misaligned or changed slots). Checks that each fault gives its block on the
 * absolute grid, entries with the region's permissions and exactly one slot;
 * that a failing callback leaves no entries; EEXIST as success; a full slot
 * table; legacy mode; the full-space pool figures; and that check_slots
 * catches broken invariants; the slot is made before the entries. The thread test lives in test_slots_threads.c.
 * On failure: the check prints the values; check_slots says which invariant. */
#include "check.h"
#include "physmap.h"
#include "pool.h"
#include "pt.h"
#include "slots.h"
#include "slots_test.h"
#include "t.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct recorder rec;

static void expect_check_ok(const struct slots *s, const char *when)
{
	char buf[256];
	const char *bad = check_slots(s, buf, sizeof(buf));
	T_CHECK(bad == NULL, "%s: %s", when, bad ? bad : "");
}

static void expect_check_fails(const struct slots *s, const char *text)
{
	char buf[256];
	const char *bad = check_slots(s, buf, sizeof(buf));
	T_CHECK(bad && strstr(bad, text), "expected \"%s\", got %s", text, bad ? bad : "(ok)");
	if (bad)
		printf("check_slots caught: %s\n", bad);
}

/* A layout with every kind, 2 MiB blocks, no reserved range. */
static const struct region small_host[] = {
	{ 0x400000, 0x3000, REGION_RO },                 /* misaligned small RO */
	{ 0x403000, 0x1fd000, REGION_NORMAL },
	{ 0x10000000, 0x400000, REGION_MMIO },
	{ 0x20000000, 0x201000, REGION_EXCLUDED },      /* leaves a PA gap of 0x1000 */
	{ 0x7f0000001000ull, 0x600000, REGION_RO },
	/* Most of the space excluded, so that legacy mode with 2 MiB leaves
	 * and check_slots stay cheap. */
	{ 0x40000000, 0x7f0000000000ull - 0x40000000, REGION_EXCLUDED },
	{ 0x7f0001000000ull, (1ull << 47) - 0x7f0001000000ull, REGION_EXCLUDED },
};

static int small_env(struct slot_env *e, unsigned flags, uint32_t capacity)
{
	const struct physmap_config c = { .block_size = 2ull << 20, .reserved = 1, .pa_bits = 48 };
	return env_init(e, &c, small_host, sizeof(small_host) / sizeof(small_host[0]), flags, capacity,
			recorder_set, &rec);
}

static void test_faults(void)
{
	struct slot_env e;
	struct slots_result r;
	struct pt_leaf leaf;
	uint64_t pa;

	recorder_reset(&rec);
	if (!T_EQ(small_env(&e, SLOTS_USER, 64), 0))
		return;
	uint32_t used0 = e.pool.used;
	/* NORMAL block: va 0x500000 lies in grid cell [0x400000, 0x600000),
	 * trimmed to the NORMAL region [0x403000, ...). */
	T_EQ(slots_fault(&e.slots, 0x500123, &r), 0);
	T_EQ(r.outcome, SLOTS_NEW);
	T_EQ(r.slot, 0);
	T_EQ(physmap_translate(&e.pm, 0x403000, &pa), 0);
	T_EQ(r.pa, pa);
	T_EQ(r.len, 0x1fd000);
	T_EQ(rec.count, 1);
	T_EQ(rec.slot[0].gpa, pa);
	T_EQ(rec.slot[0].hva, 0x403000);
	T_EQ(rec.slot[0].readonly, false);
	T_EQ(pt_lookup(&e.pt, 0x500000, &leaf), 0);
	T_EQ(leaf.opts & (PT_R | PT_W | PT_X | PT_USER), PT_R | PT_W | PT_USER);
	T_EQ(pt_lookup(&e.pt, 0x402000, &leaf), -ENOENT);   /* RO block not yet */
	T_CHECK(slots_has_slot(&e.slots, pa + 0x1000), "has_slot");
	T_CHECK(!slots_has_slot(&e.slots, pa - 0x1000), "RO block has no slot yet");
	expect_check_ok(&e.slots, "after NORMAL fault");

	/* Same block again: already. */
	T_EQ(slots_fault(&e.slots, 0x5ff000, &r), 0);
	T_EQ(r.outcome, SLOTS_ALREADY);
	T_EQ(r.slot, 0);
	T_EQ(rec.calls, 1);

	/* RO block: read-only entries and a read-only slot. */
	T_EQ(slots_fault(&e.slots, 0x401000, &r), 0);
	T_EQ(r.outcome, SLOTS_NEW);
	T_EQ(r.len, 0x3000);
	T_EQ(rec.slot[1].readonly, true);
	T_EQ(pt_lookup(&e.pt, 0x402000, &leaf), 0);
	T_EQ(leaf.opts & (PT_R | PT_W | PT_X), PT_R);

	/* MMIO: entries, no slot. */
	T_EQ(slots_fault(&e.slots, 0x10200000, &r), 0);
	T_EQ(r.outcome, SLOTS_MMIO);
	T_EQ(r.len, 0x200000);
	T_EQ(rec.calls, 2);
	T_EQ(e.slots.mmio_blocks, 1);
	T_EQ(pt_lookup(&e.pt, 0x10200000, &leaf), 0);
	T_EQ(slots_fault(&e.slots, 0x10200000, &r), 0);   /* again: no second mapping */
	T_EQ(e.slots.mmio_blocks, 1);
	T_CHECK(!slots_has_slot(&e.slots, leaf.pa), "mmio has no slot");

	/* A big RO region: the block on the absolute grid, both in PA and VA. */
	T_EQ(slots_fault(&e.slots, 0x7f0000400000ull, &r), 0);
	T_EQ(r.outcome, SLOTS_NEW);
	T_EQ(r.pa & ((2ull << 20) - 1), 0);
	T_EQ(r.len, 2ull << 20);
	T_EQ(rec.slot[2].hva, 0x7f0000400000ull);
	T_EQ(slots_fault(&e.slots, 0x7f0000001000ull, &r), 0);
	T_EQ(r.len, 0x1ff000);   /* first block: trimmed at the region start */

	/* Outside the map. */
	T_EQ(slots_fault(&e.slots, 0x20000000, &r), -EFAULT);    /* excluded */
	T_EQ(slots_fault(&e.slots, 0x0, &r), -EFAULT);           /* page 0 */
	T_EQ(slots_fault(&e.slots, 1ull << 47, &r), -EFAULT);
	T_EQ(slots_fault(&e.slots, 0xffffffffff600000ull, &r), -EFAULT);
	T_EQ(slots_map_physical(&e.slots, 0, 0x1000, &r), -EFAULT);
	T_EQ(slots_map_physical(&e.slots, pa, 0, &r), -EINVAL);
	T_EQ(slots_map_physical(&e.slots, ~0ull - 0xfff, 0x2000, &r), -EINVAL);
	T_EQ(rec.calls, 4);
	T_CHECK(e.pool.used > used0, "tables grew");
	T_CHECK(e.pool.used <= e.bound, "used %u above bound %llu", e.pool.used, (unsigned long long)e.bound);
	expect_check_ok(&e.slots, "after faults");
	T_EQ(recorder_verify(&rec, &e.slots), 0);
	env_destroy(&e);
}

/* map_physical over a range of several blocks, and one that runs into a PA
 * gap: the blocks before the gap keep their slots. */
static void test_map_range(void)
{
	struct slot_env e;
	struct slots_result r;
	uint64_t pa, pa2;

	recorder_reset(&rec);
	if (!T_EQ(small_env(&e, 0, 64), 0))
		return;
	const struct phys_region *ro = &e.pm.regions[e.pm.count - 2];
	T_EQ(ro->va, 0x7f0000001000ull);
	T_EQ(slots_map_physical(&e.slots, ro->pa, ro->len, &r), 0);
	T_EQ(rec.count, 4);       /* 0x1ff000 + 2 MiB + 2 MiB + 0x1000 */
	T_EQ(r.len, 0x1000);
	/* The excluded 0x201000 bytes at 0x20000000 leave PA [0x20000000,
	 * 0x20001000) unused. */
	T_EQ(physmap_translate(&e.pm, 0x1fe00000, &pa), 0);
	T_EQ(physmap_translate(&e.pm, 0x20201000, &pa2), 0);
	T_EQ(pa2 - pa, 0x201000);
	T_EQ(slots_map_physical(&e.slots, pa, pa2 + 0x1000 - pa, &r), -EFAULT);
	T_CHECK(slots_has_slot(&e.slots, pa), "the block before the gap keeps its slot");
	T_CHECK(!slots_has_slot(&e.slots, pa2), "the block after the gap was not reached");
	T_EQ(rec.count, 5);
	expect_check_ok(&e.slots, "after ranges");
	env_destroy(&e);
}

/* A failing callback: the block's entries are removed again, the pool is as
 * before, no slot; a retry then succeeds. */
static void test_callback_failure(void)
{
	struct slot_env e;
	struct slots_result r;
	bool empty = false;

	recorder_reset(&rec);
	if (!T_EQ(small_env(&e, 0, 64), 0))
		return;
	T_EQ(slots_fault(&e.slots, 0x7f0000400000ull, &r), 0);
	uint32_t used = e.pool.used;
	const int errs[] = { -EINVAL, -ENOMEM, -EFAULT, -EPERM };
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		rec.fail_next = errs[i];
		T_EQ(slots_fault(&e.slots, 0x500000, &r), errs[i]);
		T_EQ(pt_is_empty(&e.pt, 0x403000, 0x1fd000, &empty), 0);
		T_CHECK(empty, "entries left after callback error %d", errs[i]);
		T_EQ(e.pool.used, used);
		T_EQ(e.slots.count, 1);
		T_CHECK(!slots_has_slot(&e.slots, r.pa), "slot after failure");
		expect_check_ok(&e.slots, "after a failed callback");
	}
	/* A failing 1 GiB-aligned block next to a mapped one: the unmap must
	 * split nothing it did not create. */
	T_EQ(slots_fault(&e.slots, 0x7f0000600000ull, &r), 0);
	rec.fail_next = -EINVAL;
	T_EQ(slots_fault(&e.slots, 0x7f0000200000ull, &r), -EINVAL);
	T_EQ(pt_is_empty(&e.pt, 0x7f0000200000ull, 2ull << 20, &empty), 0);
	T_CHECK(empty, "entries left");
	expect_check_ok(&e.slots, "after a failed neighbour");
	T_EQ(slots_fault(&e.slots, 0x500000, &r), 0);
	T_EQ(r.outcome, SLOTS_NEW);
	T_EQ(recorder_verify(&rec, &e.slots), 0);
	env_destroy(&e);
}

/* The slot comes before the entries (else another vCPU's access in between
 * would exit as MMIO), and a pool too short for the entries fails before
 * the callback. */
static struct slot_env *order_env;
static int order_bad;

static int order_set(void *ctx, uint32_t id, uint64_t pa, uint64_t len, uint64_t va, bool ro)
{
	bool empty = false;
	if (pt_is_empty(&order_env->pt, va, len, &empty) || !empty)
		order_bad++;
	return recorder_set(ctx, id, pa, len, va, ro);
}

static void test_slot_before_entries(void)
{
	struct slot_env e;
	struct slots_result r;
	uint64_t *taken[64];
	unsigned n = 0;
	bool empty = false;
	const struct physmap_config c = { .block_size = 2ull << 20, .reserved = 1, .pa_bits = 48 };

	recorder_reset(&rec);
	if (!T_EQ(env_init(&e, &c, small_host, sizeof(small_host) / sizeof(small_host[0]), 0, 64, order_set, &rec), 0))
		return;
	order_env = &e;
	order_bad = 0;
	T_EQ(slots_fault(&e.slots, 0x500000, &r), 0);
	T_EQ(slots_fault(&e.slots, 0x401000, &r), 0);
	T_EQ(order_bad, 0);
	/* Drain the pool: the next block cannot get its tables. */
	while (n < 64 && pool_take(&e.pool, &taken[n]) == 0)
		n++;
	T_EQ(pool_free(&e.pool), 0);
	uint64_t calls = rec.calls;
	T_EQ(slots_fault(&e.slots, 0x7f0000400000ull, &r), -ENOMEM);
	T_EQ(rec.calls, calls);   /* no slot made for a block we could not map */
	T_EQ(pt_is_empty(&e.pt, 0x7f0000400000ull, 2ull << 20, &empty), 0);
	T_CHECK(empty, "entries after -ENOMEM");
	while (n)
		pool_give(&e.pool, taken[--n]);
	T_EQ(slots_fault(&e.slots, 0x7f0000400000ull, &r), 0);
	T_EQ(r.outcome, SLOTS_NEW);
	T_EQ(order_bad, 0);
	expect_check_ok(&e.slots, "slot before entries");
	env_destroy(&e);
}

/* The recorder already holds a slot for the block under another id (another
 * thread or process got there first): KVM says EEXIST, which is success. */
static void test_eexist(void)
{
	struct slot_env e;
	struct slots_result r;
	struct pt_leaf leaf;
	uint64_t pa;

	recorder_reset(&rec);
	if (!T_EQ(small_env(&e, 0, 64), 0))
		return;
	T_EQ(physmap_translate(&e.pm, 0x403000, &pa), 0);
	T_EQ(recorder_set(&rec, 77, pa, 0x1fd000, 0x403000, false), 0);
	T_EQ(slots_fault(&e.slots, 0x403000, &r), 0);
	T_EQ(r.outcome, SLOTS_NEW);
	T_EQ(rec.eexist, 1);
	T_EQ(pt_lookup(&e.pt, 0x403000, &leaf), 0);
	T_CHECK(slots_has_slot(&e.slots, pa), "EEXIST block has its slot");
	expect_check_ok(&e.slots, "after EEXIST");
	/* And the recorder itself follows KVM. */
	T_EQ(recorder_set(&rec, 78, pa + 0x1000, 0x1000, 0x404000, false), -EEXIST);  /* half overlap */
	T_EQ(recorder_set(&rec, 77, pa, 0x1fd000, 0x403000, false), 0);              /* same id, same */
	T_EQ(recorder_set(&rec, 77, pa, 0x1fd000, 0x404000, false), -EINVAL);        /* same id, moved */
	T_EQ(recorder_set(&rec, 79, pa + 0x10000000, 0x800, 0x403000, false), -EINVAL); /* misaligned */
	T_EQ(recorder_set(&rec, 79, pa + 0x10000800, 0x1000, 0x403000, false), -EINVAL);
	T_EQ(recorder_set(&rec, RECORDER_NR_SLOTS, pa + 0x10000000, 0x1000, 0x1000, false), -EINVAL);
	env_destroy(&e);
}

/* A full slot table: -ENOSPC before any table is touched; mmio still works. */
static void test_full_table(void)
{
	struct slot_env e;
	struct slots_result r;
	bool empty = false;

	recorder_reset(&rec);
	if (!T_EQ(small_env(&e, 0, 2), 0))
		return;
	T_EQ(slots_fault(&e.slots, 0x500000, &r), 0);
	T_EQ(slots_fault(&e.slots, 0x400000, &r), 0);
	uint32_t used = e.pool.used;
	T_EQ(slots_fault(&e.slots, 0x7f0000400000ull, &r), -ENOSPC);
	T_EQ(e.pool.used, used);
	T_EQ(pt_is_empty(&e.pt, 0x7f0000400000ull, 2ull << 20, &empty), 0);
	T_CHECK(empty, "entries after -ENOSPC");
	T_EQ(rec.calls, 2);
	T_EQ(slots_fault(&e.slots, 0x500000, &r), 0);        /* existing: fine */
	T_EQ(r.outcome, SLOTS_ALREADY);
	T_EQ(slots_fault(&e.slots, 0x10000000, &r), 0);      /* mmio needs no slot */
	T_EQ(r.outcome, SLOTS_MMIO);
	expect_check_ok(&e.slots, "full table");
	env_destroy(&e);
}

static void test_init_errors(void)
{
	struct slot_env e;
	struct slots s;

	recorder_reset(&rec);
	if (!T_EQ(small_env(&e, 0, 4), 0))
		return;
	T_EQ(slots_init(&s, &e.pt, &e.pm, 0, 0, recorder_set, &rec), -EINVAL);
	T_EQ(slots_init(&s, &e.pt, &e.pm, SLOTS_MAX_CAPACITY + 1, 0, recorder_set, &rec), -EINVAL);
	T_EQ(slots_init(&s, &e.pt, &e.pm, 4, 0x100, recorder_set, &rec), -EINVAL);
	T_EQ(slots_init(&s, &e.pt, &e.pm, 4, 0, NULL, &rec), -EINVAL);
	T_EQ(slots_init(&s, NULL, &e.pm, 4, 0, recorder_set, &rec), -EINVAL);
	env_destroy(&e);
}

/* SLOTS_EXEC: read-only regions become rx, never wx. */
static void test_exec(void)
{
	struct slot_env e;
	struct slots_result r;
	struct pt_leaf leaf;

	recorder_reset(&rec);
	if (!T_EQ(small_env(&e, SLOTS_EXEC, 8), 0))
		return;
	T_EQ(slots_fault(&e.slots, 0x401000, &r), 0);
	T_EQ(slots_fault(&e.slots, 0x500000, &r), 0);
	T_EQ(pt_lookup(&e.pt, 0x401000, &leaf), 0);
	T_EQ(leaf.opts & (PT_R | PT_W | PT_X | PT_USER), PT_R | PT_X);
	T_EQ(pt_lookup(&e.pt, 0x500000, &leaf), 0);
	T_EQ(leaf.opts & (PT_R | PT_W | PT_X), PT_R | PT_W);
	expect_check_ok(&e.slots, "exec");
	env_destroy(&e);
}

/* Legacy: every region's entries at init, slots lazily, tables untouched by
 * faults; check_slots does not ask for slots then. */
static void test_legacy(void)
{
	struct slot_env e;
	struct slots_result r;
	struct pt_leaf leaf;

	recorder_reset(&rec);
	if (!T_EQ(small_env(&e, SLOTS_LEGACY, 64), 0))
		return;
	T_EQ(pt_lookup(&e.pt, 0x500000, &leaf), 0);
	T_EQ(pt_lookup(&e.pt, 0x401000, &leaf), 0);
	T_EQ(leaf.opts & PT_W, 0);
	T_EQ(pt_lookup(&e.pt, 0x7f0000400000ull, &leaf), 0);
	T_EQ(pt_lookup(&e.pt, 0x20000000, &leaf), -ENOENT);  /* excluded */
	T_EQ(e.slots.count, 0);
	T_EQ(rec.calls, 0);
	expect_check_ok(&e.slots, "legacy init");
	uint32_t used = e.pool.used;
	T_CHECK(used <= e.bound, "legacy used %u above bound %llu", used, (unsigned long long)e.bound);
	T_EQ(slots_fault(&e.slots, 0x500000, &r), 0);
	T_EQ(r.outcome, SLOTS_NEW);
	T_EQ(e.pool.used, used);
	rec.fail_next = -EINVAL;   /* legacy keeps its entries on failure: that is the old way */
	T_EQ(slots_fault(&e.slots, 0x401000, &r), -EINVAL);
	T_EQ(pt_lookup(&e.pt, 0x401000, &leaf), 0);
	expect_check_ok(&e.slots, "legacy after faults");
	env_destroy(&e);
}

/* check_slots must catch each broken invariant. */
static void test_checker_catches(void)
{
	struct slot_env e;
	struct slots_result r;
	uint64_t pa;

	recorder_reset(&rec);
	if (!T_EQ(small_env(&e, 0, 64), 0))
		return;
	T_EQ(slots_fault(&e.slots, 0x500000, &r), 0);
	T_EQ(physmap_translate(&e.pm, 0x7f0000400000ull, &pa), 0);

	/* An entry in a block without a slot. */
	T_EQ(pt_map(&e.pt, 0x7f0000400000ull, 0x1000, pa, PT_R), 0);
	expect_check_fails(&e.slots, "has no slot");
	T_EQ(pt_unmap(&e.pt, 0x7f0000400000ull, 0x1000), 0);
	/* Wrong PA. */
	T_EQ(pt_map(&e.pt, 0x500000, 0x1000, r.pa + 0x2000, PT_R | PT_W), 0);
	expect_check_fails(&e.slots, "physical map says");
	T_EQ(physmap_translate(&e.pm, 0x500000, &pa), 0);
	T_EQ(pt_map(&e.pt, 0x500000, 0x1000, pa, PT_R | PT_W), 0);
	expect_check_ok(&e.slots, "repaired");
	/* More permission than the region: a RO block written rw. */
	T_EQ(slots_fault(&e.slots, 0x401000, &r), 0);
	T_EQ(pt_map(&e.pt, 0x401000, 0x1000, r.pa + 0x1000, PT_R | PT_W), 0);
	expect_check_fails(&e.slots, "allows r");
	T_EQ(pt_map(&e.pt, 0x401000, 0x1000, r.pa + 0x1000, PT_R | PT_X), 0);
	expect_check_fails(&e.slots, "allows r");
	T_EQ(pt_map(&e.pt, 0x401000, 0x1000, r.pa + 0x1000, PT_R), 0);
	/* A leaf in an excluded range. */
	T_EQ(pt_map(&e.pt, 0x20000000, 0x1000, 0x1000, PT_R), 0);
	expect_check_fails(&e.slots, "no physical region");
	T_EQ(pt_unmap(&e.pt, 0x20000000, 0x1000), 0);
	expect_check_ok(&e.slots, "repaired again");
	/* Two slots for one block. */
	e.slots.table[e.slots.count] = e.slots.table[0];
	e.slots.table[e.slots.count].id = e.slots.count;
	e.slots.count++;
	expect_check_fails(&e.slots, "both cover");
	e.slots.count--;
	/* A slot that is not a fault block. */
	e.slots.table[0].len -= 0x1000;
	expect_check_fails(&e.slots, "not a fault block");
	e.slots.table[0].len += 0x1000;
	e.slots.table[0].readonly = true;
	expect_check_fails(&e.slots, "readonly=1");
	e.slots.table[0].readonly = false;
	expect_check_ok(&e.slots, "all repaired");
	env_destroy(&e);
}

static int count_set(void *ctx, uint32_t id, uint64_t pa, uint64_t len, uint64_t va, bool ro)
{
	(void)id, (void)pa, (void)len, (void)va, (void)ro;
	(*(uint64_t *)ctx)++;
	return 0;
}

/* Issue 3's figure: one full-space region, 8 GiB blocks, every block
 * mapped. Absolute grid: root + 256 PDPTs + one PD and one PT for the block
 * at va 0x1000 and for the one ending at 2^47 - 4 KiB = 261 pages, in both
 * modes. */
static void test_full_space_peak(void)
{
	struct slot_env e;
	uint64_t calls = 0;

	for (int legacy = 0; legacy < 2; legacy++) {
		calls = 0;
		if (!T_EQ(env_init(&e, NULL, NULL, 0, legacy ? SLOTS_LEGACY : 0, 16384, count_set, &calls), 0))
			return;
		T_EQ(e.bound, 261);
		const struct phys_region *r = &e.pm.regions[0];
		T_EQ(slots_map_physical(&e.slots, r->pa, r->len, NULL), 0);
		T_EQ(calls, 16384);
		T_EQ(e.slots.count, 16384);
		T_EQ(e.pool.used, 261);
		uint64_t tables[PT_MAX_LEVELS] = { 0 };
		pt_count_tables(&e.pt, tables);
		T_EQ(tables[3], 1);
		T_EQ(tables[2], 256);
		T_EQ(tables[1], 2);
		T_EQ(tables[0], 2);
		T_EQ(slots_map_physical(&e.slots, r->pa, r->len, NULL), 0);   /* all there already */
		expect_check_ok(&e.slots, legacy ? "full space legacy" : "full space");
		printf("full space, 8 GiB blocks%s: bound %llu, used %u with all 16384 blocks slotted\n",
		       legacy ? " (legacy)" : "", (unsigned long long)e.bound, e.pool.used);
		env_destroy(&e);
	}
}

/* Random layouts, random faults: the pool sized by the bound never runs
 * out, every fault's entries pass check_slots. */
static uint64_t seed = 0x243f6a8885a308d3ull;
static uint64_t next_rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}
#define NEXT() next_rnd()

static void test_random(void)
{
	static struct region h[300];
	for (int round = 0; round < 25; round++) {
		size_t n = 1 + NEXT() % 300;
		uint64_t va = 0x1000 + ((NEXT() % 0x4000) << 12);
		for (size_t i = 0; i < n; i++) {
			va += NEXT() % 3 ? 0 : (NEXT() % 0x40000) << 12;
			h[i].va = va;
			h[i].len = (1 + NEXT() % 0x3000) << 12;
			h[i].kind = (enum region_kind)(NEXT() % 4);
			va += h[i].len;
		}
		const uint64_t sizes[] = { 2ull << 20, 4ull << 20, 1ull << 30, 8ull << 30 };
		struct physmap_config c = { .block_size = sizes[NEXT() % 4] };
		c.reserved = 1 + (NEXT() % 4) * (1ull << 32);
		struct slot_env e;
		recorder_reset(&rec);
		int err = env_init(&e, &c, h, n, (NEXT() % 2) ? SLOTS_USER : 0, 4096, recorder_set, &rec);
		if (!T_EQ(err, 0))
			continue;
		for (int k = 0; k < 400; k++) {
			const struct region *t = &h[NEXT() % n];
			uint64_t fva = t->va + ((NEXT() % t->len) & ~0xfffull);
			struct slots_result r;
			err = slots_fault(&e.slots, fva, &r);
			T_CHECK(err == 0 || (err == -EFAULT && t->kind == REGION_EXCLUDED),
				"round %d fault 0x%llx: %d", round, (unsigned long long)fva, err);
			T_CHECK(e.pool.used <= e.bound, "used %u above bound %llu", e.pool.used,
				(unsigned long long)e.bound);
		}
		expect_check_ok(&e.slots, "random");
		T_EQ(recorder_verify(&rec, &e.slots), 0);
		T_EQ(rec.eexist, 0);
		env_destroy(&e);
	}
}

int main(void)
{
	test_faults();
	test_map_range();
	test_callback_failure();
	test_eexist();
	test_slot_before_entries();
	test_full_table();
	test_init_errors();
	test_exec();
	test_legacy();
	test_checker_catches();
	test_full_space_peak();
	test_random();
	return t_exit();
}
