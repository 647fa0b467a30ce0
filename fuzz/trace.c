/* The text-trace interpreter. Each line is parsed completely before it runs,
 * so a malformed line changes nothing. map/unmap/lookup/empty run against the
 * page-table engine with a shadow kept beside it; region/layout/fault run the
 * physical map and the slot engine as kvmrt does; check runs the full
 * checker (with the rebuild oracle for map/unmap traces, the slot invariants
 * after a layout). */
#include "trace.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "physmap.h"
#include "pool.h"
#include "pt.h"
#include "shadow.h"
#include "slots.h"
#include "tlb.h"

#define DEFAULT_POOL_PAGES 4096u
#define MAX_POOL_PAGES     (1u << 24)
#define MAX_REGIONS        4096
#define DEFAULT_SLOTS      32764u  /* KVM_CAP_NR_MEMSLOTS here */
#define SHADOW_RANGES      1024    /* to start with: the shadow grows */
#define MAX_ARGS           8

struct trace {
	FILE *out;
	struct pool pool;
	struct pt pt;
	struct shadow shadow;
	bool huge_1g;
	/* after `layout` */
	bool laid_out;
	struct region regions[MAX_REGIONS];
	size_t region_count;
	struct region host_sorted[MAX_REGIONS];
	struct phys_region phys[2 * MAX_REGIONS + 4];
	struct physmap pm;
	struct slots slots;
	uint64_t bound;
	int inject;            /* the next slot callback fails with this (-errno) */
	FILE *err;             /* where mismatches are reported */
	uint32_t max_pool;     /* largest pool a trace may ask for, in pages */
	/* live tables (`vcpus N`): deferral on, and the vCPU model with the
	 * epoch each vCPU read at its last flush point */
	unsigned nvcpus;
	struct tlb tlb;
};

static int live_setup(struct trace *t);
static int live_after(struct trace *t, const char *op, bool shootdown);

/* ---- engine state ---- */

static void drop_state(struct trace *t)
{
	if (t->laid_out)
		slots_destroy(&t->slots);
	t->laid_out = false;
	if (t->pt.root)
		pt_destroy(&t->pt);
	if (t->pool.base)
		pool_destroy(&t->pool);
	shadow_clear(&t->shadow);
	t->bound = 0;
}

static int make_tables(struct trace *t, uint32_t pages)
{
	int ret = pool_init_mmap(&t->pool, pages, 0x100000000ull);
	if (ret)
		return ret;
	ret = pt_init(&t->pt, &t->pool, 4, t->huge_1g);
	return ret ? ret : live_setup(t);
}

/* map/unmap traces without a pool line get the default pool on first use. */
static int need_tables(struct trace *t)
{
	if (t->pt.root)
		return 0;
	return make_tables(t, DEFAULT_POOL_PAGES);
}

struct trace *trace_new(FILE *out)
{
	struct trace *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->out = out;
	t->err = stderr;
	t->max_pool = MAX_POOL_PAGES;
	t->huge_1g = true;
	if (shadow_init(&t->shadow, SHADOW_RANGES)) {
		free(t);
		return NULL;
	}
	return t;
}

void trace_set_max_pool(struct trace *t, uint32_t pages)
{
	t->max_pool = pages < 1 ? 1 : pages > MAX_POOL_PAGES ? MAX_POOL_PAGES : pages;
}

void trace_free(struct trace *t)
{
	if (!t)
		return;
	drop_state(t);
	shadow_destroy(&t->shadow);
	free(t);
}

/* ---- parsing ---- */

struct args {
	char *v[MAX_ARGS];
	int n;
	char *err;
	size_t err_len;
};

static int bad(struct args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct args *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->err, a->err_len, fmt, ap);
	va_end(ap);
	return 2;
}

/* Hex with 0x, or decimal; the whole word, no sign, no overflow. */
static bool parse_u64(const char *s, uint64_t *v)
{
	int base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return false;
	uint64_t x = 0;
	for (; *s; s++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return false;
		if (x > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return false;
		x = x * (uint64_t)base + (uint64_t)d;
	}
	*v = x;
	return true;
}

static int num(struct args *a, int i, const char *what, uint64_t *v)
{
	if (!parse_u64(a->v[i], v))
		return bad(a, "%s '%s' is not a number (hex with 0x, or decimal)", what, a->v[i]);
	return 0;
}

/* r | rw | rx, then ,user ,global ,uc ,wc in any order. */
static int parse_perms(struct args *a, const char *s, uint32_t *opts)
{
	char buf[64];
	if (strlen(s) >= sizeof(buf))
		return bad(a, "perms '%s' too long", s);
	strcpy(buf, s);
	char *save = NULL;
	char *word = strtok_r(buf, ",", &save);
	if (!word)
		return bad(a, "perms missing");
	if (!strcmp(word, "r"))
		*opts = PT_R;
	else if (!strcmp(word, "rw"))
		*opts = PT_R | PT_W;
	else if (!strcmp(word, "rx"))
		*opts = PT_R | PT_X;
	else if (!strcmp(word, "rwx") || !strcmp(word, "wx"))
		*opts = PT_R | PT_W | PT_X; /* legal syntax; the engine refuses W+X */
	else
		return bad(a, "perms '%s': access must be r, rw or rx", word);
	while ((word = strtok_r(NULL, ",", &save))) {
		if (!strcmp(word, "user"))
			*opts |= PT_USER;
		else if (!strcmp(word, "global"))
			*opts |= PT_GLOBAL;
		else if (!strcmp(word, "uc"))
			*opts |= PT_UC;
		else if (!strcmp(word, "wc"))
			*opts |= PT_WC;
		else
			return bad(a, "unknown perm flag '%s' (user, global, uc, wc)", word);
	}
	return 0;
}

static int want_args(struct args *a, const char *op, int min, int max, const char *usage)
{
	if (a->n - 1 < min || a->n - 1 > max)
		return bad(a, "%s takes %s", op, usage);
	return 0;
}

static const char *errno_name(int err)
{
	switch (err) {
	case EINVAL: return "EINVAL";
	case ENOMEM: return "ENOMEM";
	case ENOSPC: return "ENOSPC";
	case EEXIST: return "EEXIST";
	case EFAULT: return "EFAULT";
	case E2BIG: return "E2BIG";
	case ENOENT: return "ENOENT";
	default: return "E?";
	}
}

/* ---- operations ---- */

static int op_pool(struct trace *t, struct args *a)
{
	uint64_t pages;
	int r = want_args(a, "pool", 1, 2, "PAGES [1g=off]");
	if (r || (r = num(a, 1, "PAGES", &pages)))
		return r;
	if (pages < 1 || pages > t->max_pool)
		return bad(a, "pool PAGES must be 1..%u (the root needs one)", t->max_pool);
	bool huge = true;
	if (a->n == 3) {
		if (strcmp(a->v[2], "1g=off") && strcmp(a->v[2], "1g=on"))
			return bad(a, "pool option '%s': 1g=off or 1g=on", a->v[2]);
		huge = !strcmp(a->v[2], "1g=on");
	}
	drop_state(t);
	t->huge_1g = huge;
	if (make_tables(t, (uint32_t)pages))
		return bad(a, "cannot allocate a pool of %" PRIu64 " pages", pages);
	return 0;
}

static void print_error(struct trace *t, const char *op, int ret, const char *why)
{
	fprintf(t->out, "%s error %s: %s\n", op, errno_name(-ret), why ? why : "failed");
}

/* The engine and the shadow disagree: say so on stderr; the trace fails. */
static int mismatch(struct trace *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int mismatch(struct trace *t, const char *fmt, ...)
{
	va_list ap;
	fflush(t->out);
	fprintf(t->err, "kvmpt-trace: FAIL: ");
	va_start(ap, fmt);
	vfprintf(t->err, fmt, ap);
	va_end(ap);
	fputc('\n', t->err);
	return 1;
}

/* After a map or unmap: same return code as the shadow's, same translation
 * over the touched range, pool accounting whole. Cheap; `check` does the rest. */
static int after_change(struct trace *t, const char *op, int ret, int shadow_ret, uint64_t va, uint64_t len)
{
	if (ret != -ENOMEM && ret != shadow_ret)
		return mismatch(t, "%s returned %d, the shadow predicts %d", op, ret, shadow_ret);
	if (t->pool.used > t->pool.capacity)
		return mismatch(t, "accounting: pool used %u above capacity %u", t->pool.used, t->pool.capacity);
	char buf[512];
	const char *f = ret ? NULL : check_range(&t->pt, &t->shadow, va, len, buf, sizeof(buf));
	return f ? mismatch(t, "%s: %s", op, f) : 0;
}

static int op_map(struct trace *t, struct args *a)
{
	uint64_t va = 0, len = 0, pa = 0;
	uint32_t opts = 0;
	int r = want_args(a, "map", 4, 4, "VA LEN PA PERMS");
	if (r || (r = num(a, 1, "VA", &va)) || (r = num(a, 2, "LEN", &len)) || (r = num(a, 3, "PA", &pa)) ||
	    (r = parse_perms(a, a->v[4], &opts)))
		return r;
	if (need_tables(t))
		return bad(a, "cannot allocate the default pool");
	uint32_t need = 0;
	const char *why = NULL;
	pt_check_map(&t->pt, va, len, pa, opts, &why);
	pt_map_cost(&t->pt, va, len, pa, opts, &need);
	uint32_t free_before = pool_free(&t->pool);
	bool was_empty = true;
	pt_is_empty(&t->pt, va, len, &was_empty);
	int ret = pt_map(&t->pt, va, len, pa, opts);
	int shadow_ret = ret == -ENOMEM ? ret : shadow_map(&t->shadow, va, len, pa, opts);
	if (shadow_ret == -ENOMEM && ret != -ENOMEM)
		return bad(a, "out of memory for the shadow");
	if (ret == -ENOMEM) {
		char msg[96];
		snprintf(msg, sizeof(msg), "pool has %u free pages, map needs %u", free_before, need);
		print_error(t, "map", ret, msg);
	} else if (ret) {
		print_error(t, "map", ret, why);
	} else {
		fprintf(t->out, "map ok\n");
	}
	int fail = after_change(t, "map", ret, shadow_ret, va, len);
	return fail ? fail : live_after(t, "map", ret == 0 && !was_empty);
}

static int op_unmap(struct trace *t, struct args *a)
{
	uint64_t va = 0, len = 0;
	int r = want_args(a, "unmap", 2, 2, "VA LEN");
	if (r || (r = num(a, 1, "VA", &va)) || (r = num(a, 2, "LEN", &len)))
		return r;
	if (need_tables(t))
		return bad(a, "cannot allocate the default pool");
	uint32_t need = 0;
	const char *why = NULL;
	pt_check_range(&t->pt, va, len, &why);
	pt_unmap_cost(&t->pt, va, len, &need);
	uint32_t free_before = pool_free(&t->pool);
	int ret = pt_unmap(&t->pt, va, len);
	int shadow_ret = ret == -ENOMEM ? ret : shadow_unmap(&t->shadow, va, len);
	if (shadow_ret == -ENOMEM && ret != -ENOMEM)
		return bad(a, "out of memory for the shadow");
	if (ret == -ENOMEM) {
		char msg[96];
		snprintf(msg, sizeof(msg), "pool has %u free pages, unmap needs %u to split", free_before, need);
		print_error(t, "unmap", ret, msg);
	} else if (ret) {
		print_error(t, "unmap", ret, why);
	} else {
		fprintf(t->out, "unmap ok\n");
	}
	int fail = after_change(t, "unmap", ret, shadow_ret, va, len);
	return fail ? fail : live_after(t, "unmap", ret == 0);
}

static const char *size_name(uint64_t size)
{
	return size == (1ull << 30) ? "1G" : size == (1ull << 21) ? "2M" : "4K";
}

static int op_lookup(struct trace *t, struct args *a)
{
	uint64_t va = 0;
	int r = want_args(a, "lookup", 1, 1, "VA");
	if (r || (r = num(a, 1, "VA", &va)))
		return r;
	if (need_tables(t))
		return bad(a, "cannot allocate the default pool");
	struct pt_leaf leaf;
	uint64_t spa = 0;
	uint32_t sopts = 0;
	int ret = pt_lookup(&t->pt, va, &leaf);
	int shadow_ret = shadow_lookup(&t->shadow, va, &spa, &sopts);
	if (ret) { /* a non-canonical va holds no leaf either */
		fprintf(t->out, "lookup 0x%" PRIx64 " unmapped\n", va);
		if (!t->laid_out && shadow_ret == 0)
			return mismatch(t, "lookup 0x%" PRIx64 ": unmapped, the shadow maps it to 0x%" PRIx64, va, spa);
		return 0;
	}
	char perms[32];
	uint64_t pa = leaf.pa + (va - leaf.va);
	fprintf(t->out, "lookup 0x%" PRIx64 " -> 0x%" PRIx64 " %s %s\n", va, pa, size_name(leaf.size),
		pt_opts_str(leaf.opts, perms));
	if (!t->laid_out && (shadow_ret || spa != (pa & ~0xfffull) || sopts != leaf.opts))
		return mismatch(t, "lookup 0x%" PRIx64 ": the shadow says %s 0x%" PRIx64 " opts 0x%x", va,
				shadow_ret ? "unmapped" : "pa", spa, sopts);
	return 0;
}

static int op_empty(struct trace *t, struct args *a)
{
	uint64_t va = 0, len = 0;
	int r = want_args(a, "empty", 2, 2, "VA LEN");
	if (r || (r = num(a, 1, "VA", &va)) || (r = num(a, 2, "LEN", &len)))
		return r;
	if (need_tables(t))
		return bad(a, "cannot allocate the default pool");
	const char *why = NULL;
	bool empty = false;
	pt_check_range(&t->pt, va, len, &why);
	int ret = pt_is_empty(&t->pt, va, len, &empty);
	bool shadow_valid = va % 4096 == 0 && len % 4096 == 0 && len && va + len - 1 >= va &&
			    (va + len - 1 < 0x800000000000ull || va >= 0xffff800000000000ull);
	if (ret) {
		print_error(t, "empty", ret, why);
		return shadow_valid ? mismatch(t, "empty returned %d for a valid range", ret) : 0;
	}
	fprintf(t->out, "empty %s\n", empty ? "yes" : "no");
	if (!shadow_valid)
		return mismatch(t, "empty accepted an invalid range");
	if (!t->laid_out && empty != shadow_is_empty(&t->shadow, va, len))
		return mismatch(t, "empty says %s, the shadow the opposite", empty ? "yes" : "no");
	return 0;
}

/* A check over more than this many tables says on stderr how far it is. */
#define CHECK_PROGRESS_TABLES 100000u

struct check_progress {
	struct trace *t;
	unsigned shown;   /* tenths printed */
};

static void check_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct check_progress *p = ctx;
	unsigned tenth = total ? (unsigned)(done >= total ? 10 : done / (total / 10 ? total / 10 : 1)) : 10;
	if (tenth > 10)
		tenth = 10;
	if (tenth <= p->shown)
		return;
	p->shown = tenth;
	fprintf(p->t->err, "kvmpt-trace: check: rebuild compared %u%% (0x%" PRIx64 " of 0x%" PRIx64 " bytes)\n",
		tenth * 10, done < total ? done : total, total);
	fflush(p->t->err);
}

static int op_check(struct trace *t, struct args *a)
{
	int r = want_args(a, "check", 0, 0, "no arguments");
	if (r)
		return r;
	if (need_tables(t))
		return bad(a, "cannot allocate the default pool");
	char buf[512];
	const char *fail;
	bool loud = t->pool.used > CHECK_PROGRESS_TABLES;
	struct check_progress progress = { .t = t };
	if (loud) {
		fflush(t->out);
		fprintf(t->err, "kvmpt-trace: check: %u tables: structure and translation...\n", t->pool.used);
		fflush(t->err);
	}
	if (t->laid_out)
		fail = check_slots(&t->slots, buf, sizeof(buf));
	else if (!(fail = check_tables(&t->pt, &t->shadow, 0, buf, sizeof(buf))))
		fail = check_rebuild_progress(&t->pt, &t->shadow, buf, sizeof(buf), loud ? check_progress : NULL,
					      &progress);
	if (loud)
		fprintf(t->err, "kvmpt-trace: check: done\n");
	if (fail) {
		fprintf(t->out, "check FAIL: %s\n", fail);
		return 1;
	}
	fprintf(t->out, "check ok\n");
	return 0;
}

static int op_region(struct trace *t, struct args *a)
{
	uint64_t va, len;
	int r = want_args(a, "region", 2, 3, "VA LEN [ro|mmio|excluded]");
	if (r || (r = num(a, 1, "VA", &va)) || (r = num(a, 2, "LEN", &len)))
		return r;
	enum region_kind kind = REGION_NORMAL;
	if (a->n == 4) {
		if (!strcmp(a->v[3], "ro"))
			kind = REGION_RO;
		else if (!strcmp(a->v[3], "mmio"))
			kind = REGION_MMIO;
		else if (!strcmp(a->v[3], "excluded"))
			kind = REGION_EXCLUDED;
		else
			return bad(a, "region kind '%s': ro, mmio or excluded", a->v[3]);
	}
	if (t->region_count == MAX_REGIONS)
		return bad(a, "more than %d regions", MAX_REGIONS);
	t->regions[t->region_count++] = (struct region){ .va = va, .len = len, .kind = kind };
	return 0;
}

/* The slot callback: KVM's argument rules, and a failure when `inject` asked
 * for one (-EEXIST plays another vCPU that created the slot first). */
static int set_slot(void *ctx, uint32_t id, uint64_t pa, uint64_t len, uint64_t va, bool readonly)
{
	struct trace *t = ctx;
	(void)readonly;
	if ((pa | len | va) & 0xfff || len == 0 || id >= t->slots.capacity)
		return -EINVAL;
	int ret = t->inject;
	t->inject = 0;
	return ret;
}

static int op_layout(struct trace *t, struct args *a)
{
	struct physmap_config cfg = { 0 };
	bool legacy = false;
	unsigned flags = 0;
	uint64_t slots = DEFAULT_SLOTS;
	for (int i = 1; i < a->n; i++) {
		char *eq = strchr(a->v[i], '=');
		uint64_t v = 0;
		if (!strcmp(a->v[i], "legacy")) {
			legacy = true;
			continue;
		}
		if (!strcmp(a->v[i], "user") || !strcmp(a->v[i], "exec")) {
			flags |= !strcmp(a->v[i], "user") ? SLOTS_USER : SLOTS_EXEC;
			continue;
		}
		if (!eq || !parse_u64(eq + 1, &v))
			return bad(a, "layout option '%s': block=SIZE reserved=SIZE physbits=N slots=N legacy user exec",
				   a->v[i]);
		*eq = 0;
		if (!strcmp(a->v[i], "block"))
			cfg.block_size = v;
		else if (!strcmp(a->v[i], "reserved"))
			cfg.reserved = v;
		else if (!strcmp(a->v[i], "physbits") && v <= 64)
			cfg.pa_bits = (unsigned)v;
		else if (!strcmp(a->v[i], "slots") && v >= 1 && v <= 1u << 20)
			slots = v;
		else
			return bad(a, "layout option '%s' unknown or out of range", a->v[i]);
		if (v == 0)
			return bad(a, "layout option %s=0", a->v[i]);
	}
	drop_state(t);
	const char *why = NULL;
	int ret = physmap_build(&t->pm, &cfg, t->regions, t->region_count, t->host_sorted, t->phys,
				sizeof(t->phys) / sizeof(t->phys[0]), &why);
	if (ret) {
		print_error(t, "layout", ret, why);
		return 0;
	}
	uint64_t pages;
	ret = physmap_bound(&t->pm, legacy, 4, t->huge_1g, &pages);
	if (ret) {
		print_error(t, "layout", ret, "cannot compute the pool bound of this layout");
		return 0;
	}
	if (pages > t->max_pool) {
		print_error(t, "layout", -E2BIG, "the pool the bound asks for is too large");
		return 0;
	}
	if (make_tables(t, (uint32_t)pages))
		return bad(a, "cannot allocate a pool of %" PRIu64 " pages", pages);
	t->inject = 0;
	ret = slots_init(&t->slots, &t->pt, &t->pm, (uint32_t)slots, flags | (legacy ? SLOTS_LEGACY : 0), set_slot, t);
	if (ret) {
		print_error(t, "layout", ret, "slot engine");
		drop_state(t);
		return 0;
	}
	t->laid_out = true;
	t->bound = pages;
	for (size_t i = 0; i < t->pm.count; i++) {
		const struct phys_region *p = &t->pm.regions[i];
		fprintf(t->out, "phys 0x%" PRIx64 "-0x%" PRIx64 " -> 0x%" PRIx64 "%s\n", p->va, p->va + p->len, p->pa,
			p->kind == REGION_RO ? " ro" : p->kind == REGION_MMIO ? " mmio" : "");
	}
	return 0;
}

static const char *slots_error(int ret)
{
	return ret == -EFAULT	? "pa is in no physical region"
	       : ret == -ENOSPC ? "slot table is full"
	       : ret == -ENOMEM ? "out of memory (pool, or the slot callback said so)"
	       : ret == -EINVAL ? "bad range or slot callback refused"
				: "slot callback failed";
}

static int op_fault(struct trace *t, struct args *a)
{
	uint64_t va;
	int r = want_args(a, "fault", 1, 1, "VA");
	if (r || (r = num(a, 1, "VA", &va)))
		return r;
	if (!t->laid_out) {
		fprintf(t->out, "fault 0x%" PRIx64 " error EINVAL: no layout yet\n", va);
		return 0;
	}
	const struct region *host = physmap_host_region(&t->pm, va);
	if (!host || host->kind == REGION_EXCLUDED) {
		fprintf(t->out, "fault 0x%" PRIx64 " error EFAULT: va is in no host region\n", va);
		return 0;
	}
	struct slots_result res;
	int ret = slots_fault(&t->slots, va, &res);
	if (ret) {
		const char *why = ret == -EFAULT ? "va is in no physical region" : slots_error(ret);
		fprintf(t->out, "fault 0x%" PRIx64 " error %s: %s\n", va, errno_name(-ret), why);
		return 0;
	}
	if (res.outcome == SLOTS_ALREADY)
		fprintf(t->out, "fault 0x%" PRIx64 " already mapped\n", va);
	else if (res.outcome == SLOTS_MMIO)
		fprintf(t->out, "fault 0x%" PRIx64 " -> mmio pa 0x%" PRIx64 " len 0x%" PRIx64 "\n", va, res.pa, res.len);
	else
		fprintf(t->out, "fault 0x%" PRIx64 " -> slot %u pa 0x%" PRIx64 " len 0x%" PRIx64 "\n", va, res.slot,
			res.pa, res.len);
	return live_after(t, "fault", false);
}

/* mapphys PA LEN: slots_map_physical, as a vCPU's fault handler calls it. */
static int op_mapphys(struct trace *t, struct args *a)
{
	uint64_t pa = 0, len = 0;
	int r = want_args(a, "mapphys", 2, 2, "PA LEN");
	if (r || (r = num(a, 1, "PA", &pa)) || (r = num(a, 2, "LEN", &len)))
		return r;
	if (!t->laid_out) {
		fprintf(t->out, "mapphys error EINVAL: no layout yet\n");
		return 0;
	}
	int ret = slots_map_physical(&t->slots, pa, len, NULL);
	if (ret)
		print_error(t, "mapphys", ret, slots_error(ret));
	else
		fprintf(t->out, "mapphys ok\n");
	return live_after(t, "mapphys", false);
}

/* mapall: every physical region through map_physical, until an error. */
static int op_mapall(struct trace *t, struct args *a)
{
	int r = want_args(a, "mapall", 0, 0, "no arguments");
	if (r)
		return r;
	if (!t->laid_out) {
		fprintf(t->out, "mapall error EINVAL: no layout yet\n");
		return 0;
	}
	for (size_t i = 0; i < t->pm.count; i++) {
		int ret = slots_map_physical(&t->slots, t->pm.regions[i].pa, t->pm.regions[i].len, NULL);
		if (ret) {
			print_error(t, "mapall", ret, slots_error(ret));
			return live_after(t, "mapall", false);
		}
	}
	fprintf(t->out, "mapall ok\n");
	return live_after(t, "mapall", false);
}

/* inject ERR: the next slot callback fails with ERR (no output). */
static int op_inject(struct trace *t, struct args *a)
{
	int r = want_args(a, "inject", 1, 1, "EINVAL|ENOMEM|EEXIST");
	if (r)
		return r;
	if (!strcmp(a->v[1], "EINVAL"))
		t->inject = -EINVAL;
	else if (!strcmp(a->v[1], "ENOMEM"))
		t->inject = -ENOMEM;
	else if (!strcmp(a->v[1], "EEXIST"))
		t->inject = -EEXIST;
	else
		return bad(a, "inject takes EINVAL, ENOMEM or EEXIST");
	return 0;
}

static int op_stats(struct trace *t, struct args *a)
{
	int r = want_args(a, "stats", 0, 0, "no arguments");
	if (r)
		return r;
	if (need_tables(t))
		return bad(a, "cannot allocate the default pool");
	uint64_t tables[5];
	pt_count_tables(&t->pt, tables);
	fprintf(t->out, "stats pool %u/%u tables pml4=%" PRIu64 " pdpt=%" PRIu64 " pd=%" PRIu64 " pt=%" PRIu64
		" slots=%u",
		t->pool.used, t->pool.capacity, tables[3], tables[2], tables[1], tables[0],
		t->laid_out ? __atomic_load_n(&t->slots.count, __ATOMIC_ACQUIRE) : 0);
	if (t->nvcpus) /* live tables: pages waiting for the vCPUs' flushes */
		fprintf(t->out, " retired=%u", pool_retired(&t->pool));
	fputc('\n', t->out);
	return 0;
}

/* ---- live tables: vCPUs, their caches and flush points ----
 * `vcpus N` turns on deferred reclamation (pool_defer) and the vCPU model
 * (core/tlb.c). The trace then plays the runtime: an unmap, or a map over
 * a range that had translations, makes every vCPU flush before it counts
 * as done (shootdown); faults and maps into holes do not. After every
 * change the model checks that no vCPU can reach a freed or reused table
 * page or use a translation the tables no longer allow. */

static int live_setup(struct trace *t)
{
	if (!t->nvcpus || !t->pt.root)
		return 0;
	int ret = pool_defer(&t->pool);
	if (!ret)
		ret = tlb_init(&t->tlb, &t->pt, t->nvcpus);
	return ret;
}

static int live_after(struct trace *t, const char *op, bool shootdown)
{
	if (!t->nvcpus || !t->pt.root)
		return 0;
	for (unsigned v = 0; shootdown && v < t->nvcpus; v++)
		tlb_flush_point(&t->tlb, v);
	char buf[512];
	const char *bad = tlb_check(&t->tlb, buf, sizeof(buf));
	return bad ? mismatch(t, "after %s: %s", op, bad) : 0;
}

/* vcpus N: N simulated vCPUs (1..8) from here on. */
static int op_vcpus(struct trace *t, struct args *a)
{
	uint64_t n = 0;
	int r = want_args(a, "vcpus", 1, 1, "N");
	if (r || (r = num(a, 1, "N", &n)))
		return r;
	if (n < 1 || n > TLB_MAX_VCPUS)
		return bad(a, "vcpus takes 1..%d", TLB_MAX_VCPUS);
	t->nvcpus = (unsigned)n;
	if (live_setup(t))
		return bad(a, "cannot turn on deferred reclamation");
	fprintf(t->out, "vcpus %u\n", t->nvcpus);
	return 0;
}

/* vcpu N walk VA | vcpu N flush */
static int op_vcpu(struct trace *t, struct args *a)
{
	uint64_t v = 0, va = 0;
	int r = want_args(a, "vcpu", 2, 3, "N walk VA | N flush");
	if (r || (r = num(a, 1, "N", &v)))
		return r;
	if (!t->nvcpus || v >= t->nvcpus)
		return bad(a, "vcpu %" PRIu64 ": no such vCPU (a `vcpus N` line comes first)", v);
	if (need_tables(t))
		return bad(a, "cannot allocate the default pool");
	if (!strcmp(a->v[2], "flush") && a->n == 3) {
		uint32_t n = tlb_flush_point(&t->tlb, (unsigned)v);
		fprintf(t->out, "vcpu %" PRIu64 " flush: %u table pages reclaimed\n", v, n);
		return 0;
	}
	if (strcmp(a->v[2], "walk") || a->n != 4 || (r = num(a, 3, "VA", &va)))
		return r ? r : bad(a, "vcpu N walk VA | vcpu N flush");
	struct tlb_tr tr;
	enum tlb_source src;
	char buf[512];
	int ret = tlb_walk(&t->tlb, (unsigned)v, va, &tr, &src, buf, sizeof(buf));
	if (ret == -EFAULT) {
		fprintf(t->out, "vcpu %" PRIu64 " walk 0x%" PRIx64 " FAIL\n", v, va);
		return mismatch(t, "vcpu %" PRIu64 " walk 0x%" PRIx64 ": %s", v, va, buf);
	}
	if (ret == -EINVAL) {
		fprintf(t->out, "vcpu %" PRIu64 " walk error EINVAL: va is not canonical\n", v);
		return 0;
	}
	if (ret) {
		fprintf(t->out, "vcpu %" PRIu64 " walk 0x%" PRIx64 " unmapped\n", v, va);
		return 0;
	}
	char o[32];
	fprintf(t->out, "vcpu %" PRIu64 " walk 0x%" PRIx64 " -> 0x%" PRIx64 " %s (%s)\n", v, va,
		tr.pa + (va & 0xfff), pt_opts_str(tr.opts, o), src == TLB_FROM_TLB ? "tlb" : "tables");
	return 0;
}

static const struct {
	const char *name;
	int (*run)(struct trace *t, struct args *a);
} ops[] = {
	{ "pool", op_pool },	 { "map", op_map },	  { "unmap", op_unmap }, { "lookup", op_lookup },
	{ "empty", op_empty },	 { "check", op_check },	  { "region", op_region }, { "layout", op_layout },
	{ "fault", op_fault },	 { "stats", op_stats },	  { "mapphys", op_mapphys }, { "mapall", op_mapall },
	{ "inject", op_inject },	 { "vcpus", op_vcpus },	  { "vcpu", op_vcpu },
};

int trace_line(struct trace *t, const char *line, char *err, size_t err_len)
{
	char buf[TRACE_LINE_MAX + 1];
	struct args a = { .err = err, .err_len = err_len };
	size_t n = strcspn(line, "#\n");
	if (n >= sizeof(buf))
		return bad(&a, "line longer than %zu characters", sizeof(buf) - 1);
	memcpy(buf, line, n);
	buf[n] = 0;
	char *save = NULL;
	for (char *w = strtok_r(buf, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
		if (a.n == MAX_ARGS)
			return bad(&a, "too many words");
		a.v[a.n++] = w;
	}
	if (a.n == 0)
		return 0;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(a.v[0], ops[i].name))
			return ops[i].run(t, &a);
	return bad(&a, "unknown operation '%s'", a.v[0]);
}

/* Reads one line of at most TRACE_LINE_MAX characters (without the newline)
 * into buf, in constant memory. 1 a line, 0 end of input, -1 a read error
 * (errno set), -2 the line is too long, -3 the line holds a NUL byte. A bad
 * line is not read to its end: the trace stops there anyway. */
static int read_line(FILE *in, char buf[TRACE_LINE_MAX + 1])
{
	size_t n = 0;
	int c;
	while ((c = getc_unlocked(in)) != EOF && c != '\n') {
		if (c == 0)
			return -3;
		if (n == TRACE_LINE_MAX)
			return -2;
		buf[n++] = (char)c;
	}
	buf[n] = 0;
	if (c == EOF && ferror(in))
		return -1;
	return c == EOF && n == 0 ? 0 : 1;
}

int trace_run(struct trace *t, FILE *in, const char *name, FILE *err)
{
	char line[TRACE_LINE_MAX + 1];
	unsigned long lineno = 0;
	int status = 0;
	t->err = err;
	for (;;) {
		char msg[256];
		errno = 0;
		int r = read_line(in, line);
		if (r == 0)
			break;
		lineno++;
		if (r == -1) {
			int e = errno ? errno : EIO;
			fflush(t->out);
			fprintf(err, "kvmpt-trace: %s: %s (reading line %lu)\n", name, strerror(e), lineno);
			return 2;
		}
		if (r == -2)
			snprintf(msg, sizeof(msg), "line longer than %d characters", TRACE_LINE_MAX);
		else if (r == -3)
			snprintf(msg, sizeof(msg), "NUL byte in the line");
		else
			r = trace_line(t, line, msg, sizeof(msg));
		if (r == 1)
			status = 1;
		if (r < 0 || r == 2) {
			fflush(t->out);
			fprintf(err, "kvmpt-trace: %s:%lu: %s\n", name, lineno, msg);
			return 2;
		}
	}
	fflush(t->out);
	return status;
}
