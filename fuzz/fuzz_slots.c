/* fuzz_slots: the physical map and the slot engine, against a model of the
 * layout rules written here.
 *
 * Reads: a header (flags, block size, reserved, PA bits, slot capacity,
 * window, region count), the host regions, then operations until the input
 * runs out (byte format in fuzz/README.md).
 *
 * Checks:
 *  - physmap_build: EINVAL for overlapping or unaligned regions; on success
 *    every layout property of DESIGN.md (sorted, disjoint in VA and PA, PA
 *    congruent to VA modulo the block, inside [reserved, 2^pa_bits), the
 *    whole lower half minus excluded regions and page 0 covered with the
 *    host regions' kinds); E2BIG only when the space really does not fit;
 *  - physmap_bound equals the number of distinct table positions of the
 *    fault blocks (regions in legacy mode) counted here, root included;
 *  - every fault and map-physical: the block (absolute grid trimmed to the
 *    region), the outcome, the slot id, the exact slot the recorder callback
 *    (KVM's semantics, KVM-NOTES.md) receives, the return code when the
 *    callback is told to fail or the slot table is full, and afterwards the
 *    block's entries (present with the region's options, or absent when the
 *    slot failed); the pool sized by the bound never runs out and never
 *    holds more than the bound; check_slots after every change;
 *  - live tables (header flag 0x10): the pool retires freed table pages
 *    (pool_defer), three simulated vCPUs walk addresses and pass flush
 *    points between the operations (core/tlb.c), and after every operation
 *    no vCPU may still reach a table page the pool freed or reused, nor use
 *    a translation the tables no longer allow; the pool still never holds
 *    more than the bound, retired pages included (add-only use).
 *
 * Debugging: build/replay/fuzz_slots --trace FILE prints the text trace
 * (region, layout, fault lines; what the trace format cannot say is a
 * comment); build/kvmpt-trace runs it. A failure prints the trace so far and
 * the broken invariant, then aborts. */
#include <errno.h>
#ifdef FUZZ_SLOTS_READER
#include <pthread.h>
#endif
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fuzz_common.h"
#include "fuzzer.h"
#include "physmap.h"
#include "pool.h"
#include "pt.h"
#include "slots.h"
#include "tlb.h"

#define PAGE      0x1000ull
#define SZ_2M     0x200000ull
#define SZ_1G     0x40000000ull
#define SZ_512G   0x8000000000ull
#define VA_END    (1ull << 47)          /* host regions may reach it */
#define MAP_END   (VA_END - PAGE)       /* the physical map stops a page short (physmap.h) */
#define MAX_HOST  16
#define MAX_HREG  (MAX_HOST + 3)   /* + a window's two, + the work cap's one */
#define MAX_OPS   192
#define MAX_BLOCKS 2048    /* the block size grows until the layout has no more */
/* Work cap: table entries an input may have written (legacy init, faults,
 * map_physical), about 1 ms here with every check; see fuzz/README.md. */
#define WORK_CAP  4096
#define OP_FLOOR  64       /* past WORK_CAP, work an operation may still do */
#define CHECK_BUDGET 64    /* tables check_slots may walk on `check` ops, per input */
#define BHASH     4096     /* model blocks by PA: open addressing, power of two */
#define CUT_SKIP  (~0ull)
#define KVM_MAX_SLOTS 32764
#define LIVE_VCPUS 3

/* ---- decoding ---- */

enum { OP_FAULT_IN, OP_FAULT_VA, OP_FAULT_NEAR, OP_MAPPHYS, OP_INJECT, OP_CHECK, OP_MAPALL, OP_COUNT };
/* Live mode only (header flag 0x10): op = u8 % OP_COUNT_LIVE. */
enum { OP_VCPU_WALK = OP_COUNT, OP_VCPU_FLUSH, OP_COUNT_LIVE };

enum { INJ_NONE, INJ_EINVAL, INJ_ENOMEM, INJ_EEXIST, INJ_COUNT };

struct header {
	bool legacy, user, exec, huge_1g, live;
	uint64_t scaled;  /* legacy cut at this VA by the work cap, 0 if not */
	struct physmap_config cfg;
	uint32_t capacity;
	size_t n;
	struct region host[MAX_HREG];
};

struct op {
	int kind;
	uint64_t va, pa, len;
	int inject;
	unsigned vcpu;     /* vcpu walk / flush */
	bool raw;          /* vcpu walk: va is the address; else pa = block index, va = page */
};

static const uint64_t UNITS[4] = { PAGE, SZ_2M, SZ_1G, SZ_512G };
static const uint64_t WINDOW[4] = { 0, 64ull << 20, 16ull << 30, 4ull << 40 };
static const uint64_t WIN_BASE[8] = { 0x10000,	       0x40000000,     0x7f0000000000, 0x555555554000,
				      0x7fffc0000000, 0x100000000000, 0x3fe00000,     0x12345000 };
static const uint64_t ODD_BLOCK[8] = { 3ull << 20, 1ull << 20, 0x300000000, 1ull << 50,
				       1ull << 52,  4096,	 (1ull << 33) + 4096, 1ull << 63 };
static const uint64_t ODD_RESERVED[4] = { 1ull << 47, 1ull << 48, 0x1800, 0xfff00000 };

static uint64_t sx8(uint8_t b)
{
	return (uint64_t)(int64_t)(int8_t)b;
}

static void dec_header(struct fuzz_in *in, struct header *h)
{
	memset(h, 0, sizeof(*h));
	uint8_t flags = fuzz_u8(in), bs = fuzz_u8(in), rs = fuzz_u8(in), pb = fuzz_u8(in);
	uint8_t cap = fuzz_u8(in), win = fuzz_u8(in), nreg = fuzz_u8(in);
	/* Legacy builds every table at init: only inside a window, where that
	 * stays cheap enough to check often (full-space legacy: a seed). */
	h->user = flags & 2;
	h->exec = flags & 4;
	h->huge_1g = !(flags & 8);
	h->live = flags & 0x10;
	/* (Full-space legacy without 1 GiB leaves is 64M entries at init, the
	 * 4 TiB window 2M: a quarter second each, reported as hangs under
	 * load. Those two need 1 GiB leaves.) */
	h->legacy = (flags & 1) && (((win & 3) && ((win & 3) < 3 || h->huge_1g)) ||
				    ((flags & 0xc0) == 0xc0 && h->huge_1g));
	h->cfg.block_size = bs == 0 ? 0 : bs >= 0xf8 ? ODD_BLOCK[bs & 7] : 1ull << (21 + (bs - 1) % 27);
	h->cfg.reserved = rs == 0 ? 0 : rs == 1 ? 1 : rs >= 0xfc ? ODD_RESERVED[rs & 3] : (uint64_t)(rs - 1) << 26;
	h->cfg.pa_bits = pb < 0xe0 ? 0 : pb == 0xff ? 53 : 36 + (pb & 15);
	h->capacity = cap < 0x80 ? 512 : 1 + (cap & 0x7f);
	/* A window: everything outside [base, base + size) excluded. */
	uint64_t cursor = WIN_BASE[(win >> 2) & 7];
	size_t n = 0;
	if (win & 3) {
		uint64_t base = cursor, size = WINDOW[win & 3];
		h->host[n++] = (struct region){ 0, base, REGION_EXCLUDED };
		h->host[n++] = (struct region){ base + size, VA_END - base - size, REGION_EXCLUDED };
	}
	size_t want = nreg % (MAX_HOST + 1);
	for (size_t i = 0; i < want; i++) {
		uint8_t s = fuzz_u8(in);
		uint64_t unit = UNITS[(s >> 4) & 3];
		uint64_t va;
		switch ((s >> 2) & 3) {
		case 0: /* adjacent */
			va = cursor;
			break;
		case 1: /* a gap of pages and units (read in that order) */
			va = cursor + fuzz_u8(in) * PAGE;
			va += (fuzz_u8(in) % 4) * unit;
			break;
		case 2: /* overlapping the previous one by mistake */
			va = cursor - (1 + fuzz_u8(in)) * PAGE;
			break;
		default:
			va = fuzz_u64(in) & ~(PAGE - 1);
			break;
		}
		uint8_t cnt = fuzz_u8(in);
		uint64_t len = (cnt >= 0xc0 ? VA_END - va : (cnt % 64) * unit) + sx8(fuzz_u8(in)) * PAGE;
		if (len == 0 || len > (1ull << 62))
			len = PAGE;
		if ((s >> 6) == 3)
			va += 0x800; /* misaligned */
		h->host[n++] = (struct region){ va, len, (enum region_kind)(s & 3) };
		cursor = va + len;
	}
	h->n = n;
}

static void dec_op(struct fuzz_in *in, const struct header *h, uint64_t *last_va, struct op *op)
{
	memset(op, 0, sizeof(*op));
	op->kind = fuzz_u8(in) % (h->live ? OP_COUNT_LIVE : OP_COUNT);
	switch (op->kind) {
	case OP_VCPU_WALK: { /* a page of a block the model has (resolved at run time), or raw */
		uint8_t s = fuzz_u8(in);
		op->vcpu = (s & 0x7f) % LIVE_VCPUS;
		op->raw = s & 0x80;
		if (op->raw) {
			op->va = fuzz_u64(in);
		} else {
			op->pa = fuzz_u16(in);
			op->va = fuzz_u16(in);
		}
		break;
	}
	case OP_VCPU_FLUSH:
		op->vcpu = fuzz_u8(in) % LIVE_VCPUS;
		break;
	case OP_FAULT_IN: { /* inside a host region, near its start or end */
		uint8_t s = fuzz_u8(in);
		const struct region *r = h->n ? &h->host[s % h->n] : NULL;
		uint64_t off = (uint64_t)fuzz_u16(in) * PAGE;
		if (!r)
			op->va = off;
		else if (s & 0x80)
			op->va = r->va + r->len - PAGE - off % r->len;
		else
			op->va = r->va + off % r->len;
		op->va &= ~(PAGE - 1);
		break;
	}
	case OP_FAULT_VA:
		op->va = fuzz_u64(in);
		break;
	case OP_FAULT_NEAR: { /* next to the previous fault, across block-ish edges */
		uint8_t s = fuzz_u8(in);
		uint64_t unit = UNITS[s & 3];
		op->va = (*last_va & ~(unit - 1)) + sx8(fuzz_u8(in)) * unit;
		op->va += sx8(fuzz_u8(in)) * PAGE; /* units first, then pages: sequenced */
		break;
	}
	case OP_MAPPHYS: { /* PA from a region's PA base: see run_mapphys */
		uint8_t s = fuzz_u8(in);
		op->pa = s;  /* region index, resolved at run time */
		op->va = (uint64_t)fuzz_u16(in) * UNITS[(s >> 5) & 3];
		op->len = (1 + fuzz_u8(in)) * UNITS[(s >> 3) & 3];
		break;
	}
	case OP_INJECT:
		op->inject = fuzz_u8(in) % INJ_COUNT;
		break;
	default:
		break;
	}
	if (op->kind == OP_FAULT_IN || op->kind == OP_FAULT_VA || op->kind == OP_FAULT_NEAR)
		*last_va = op->va;
}

/* ---- trace ---- */

static const char *kind_word(enum region_kind k)
{
	return k == REGION_RO ? " ro" : k == REGION_MMIO ? " mmio" : k == REGION_EXCLUDED ? " excluded" : "";
}

static const char *inj_name[INJ_COUNT] = { "none", "EINVAL", "ENOMEM", "EEXIST" };

static void print_header(FILE *f, const struct header *h)
{
	fprintf(f, "# fuzz_slots input%s%s\n", h->user ? " (flags: user)" : "", h->exec ? " (flags: exec)" : "");
	if (h->scaled)
		fprintf(f, "# legacy over more than %d entries: scaled (block size, space cut at 0x%llx)\n", WORK_CAP,
			(unsigned long long)h->scaled);
	if (!h->huge_1g)
		fprintf(f, "pool 1 1g=off\n");
	for (size_t i = 0; i < h->n; i++)
		fprintf(f, "region 0x%llx 0x%llx%s\n", (unsigned long long)h->host[i].va,
			(unsigned long long)h->host[i].len, kind_word(h->host[i].kind));
	fprintf(f, "layout");
	if (h->cfg.block_size)
		fprintf(f, " block=0x%llx", (unsigned long long)h->cfg.block_size);
	if (h->cfg.reserved)
		fprintf(f, " reserved=0x%llx", (unsigned long long)h->cfg.reserved);
	if (h->cfg.pa_bits)
		fprintf(f, " physbits=%u", h->cfg.pa_bits);
	fprintf(f, " slots=%u%s%s%s\n", h->capacity, h->legacy ? " legacy" : "", h->user ? " user" : "",
		h->exec ? " exec" : "");
	if (h->live)
		fprintf(f, "vcpus %d\n", LIVE_VCPUS);
}

/* resolved: the address a vcpu walk resolved to; for mapall, nonzero when
 * the harness skipped it (so that the trace does what the input did). */
static void print_op(FILE *f, const struct op *op, const struct physmap *pm, uint64_t resolved)
{
	switch (op->kind) {
	case OP_VCPU_WALK:
		fprintf(f, "vcpu %u walk 0x%llx\n", op->vcpu, (unsigned long long)resolved);
		break;
	case OP_VCPU_FLUSH:
		fprintf(f, "vcpu %u flush\n", op->vcpu);
		break;
	case OP_FAULT_IN:
	case OP_FAULT_VA:
	case OP_FAULT_NEAR:
		fprintf(f, "fault 0x%llx\n", (unsigned long long)op->va);
		break;
	case OP_MAPPHYS:
		if (pm && pm->count) {
			const struct phys_region *r = &pm->regions[op->pa % pm->count];
			fprintf(f, "mapphys 0x%llx 0x%llx\n", (unsigned long long)(r->pa + op->va),
				(unsigned long long)op->len);
		}
		break;
	case OP_INJECT:
		fprintf(f, "inject %s\n", inj_name[op->inject]);
		break;
	case OP_CHECK:
		fprintf(f, "check\n");
		break;
	case OP_MAPALL:
		fprintf(f, resolved ? "# mapall skipped: more than 512 blocks (bounded work)\n" : "mapall\n");
		break;
	}
}

/* ---- state ---- */
struct fz;
static void print_cut_op(FILE *out, const struct fz *f, const struct op *op, uint64_t cut, uint64_t resolved);

struct kslot {  /* what "KVM" holds */
	uint64_t pa, len, va;
	bool ro, used;
};

struct mblock {  /* the model: blocks that have a slot (or mmio entries) */
	uint64_t pa, len, va;
	uint32_t id;
	bool mmio;
};

struct fz {
	const uint8_t *data;
	size_t size;
	unsigned nop;
	struct header h;
	bool have_pm;
	struct physmap pm;
	struct region sorted[MAX_HREG];
	struct phys_region phys[2 * MAX_HOST + 8];
	struct pool pool;
	struct pt pt;
	bool have_pt;
	struct slots slots;
	bool have_slots;
#ifdef FUZZ_SLOTS_READER
	pthread_t reader;
	int reader_stop;
	bool have_reader;
#endif
	uint64_t bound;
	uint64_t layout_blocks;  /* fault blocks of the layout, MAX_BLOCKS+1 when more */
	/* recorder */
	struct kslot *kvm;
	uint32_t kvm_count;
	int inject;
	unsigned calls;
	uint32_t last_id;
	uint64_t last_pa, last_len, last_va;
	bool last_ro;
	/* model */
	struct mblock *blocks;
	size_t nblocks, cap_blocks;
	/* live tables */
	struct tlb tlb;
	uint64_t resolved[MAX_OPS];     /* per op, for the trace: see print_op */
	uint32_t nslots;          /* model blocks that are slots (not mmio) */
	int32_t *bhash;           /* PA -> index + 1 into blocks, BHASH entries */
	uint32_t *kvm_used;       /* ids of the recorder's slots, kvm_count of them */
	/* work */
	uint64_t work;            /* entries written so far (estimate, fuzz_map_leaves) */
	uint64_t cut[MAX_OPS];    /* per op: 0 as decoded, CUT_SKIP, or map_physical's length */
	uint64_t checked;         /* tables check_slots walked on `check` ops */
	char buf[512];
};

static void fz_fail(struct fz *f, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fz_fail(struct fz *f, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct fuzz_in in = { f->data, f->size };
	struct header h;
	struct op op;
	uint64_t last = 0;
	fprintf(stderr, "---- fuzz_slots trace up to the failure ----\n");
	dec_header(&in, &h);
	print_header(stderr, &f->h); /* as run: the block size may have grown */
	for (unsigned i = 0; i < f->nop && in.left; i++) {
		dec_op(&in, &h, &last, &op);
		print_cut_op(stderr, f, &op, f->cut[i], f->resolved[i]);
	}
	fprintf(stderr, "---- end of trace ----\nfuzz_slots: FAIL after operation %u: %s\n", f->nop, msg);
	fflush(stderr);
	abort();
}

/* An operation as the input ran it (the work cap's cuts said). */
static void print_cut_op(FILE *out, const struct fz *f, const struct op *op, uint64_t cut, uint64_t resolved)
{
	const struct physmap *pm = f->have_pm ? &f->pm : NULL;
	if (cut == CUT_SKIP) {
		fprintf(out, "# work cap (%d entries): skipped: ", WORK_CAP);
		print_op(out, op, pm, resolved);
		return;
	}
	struct op o = *op;
	if (cut) {
		fprintf(out, "# work cap (%d entries): map_physical cut to 0x%llx bytes\n", WORK_CAP,
			(unsigned long long)cut);
		o.len = cut;
	}
	print_op(out, &o, pm, resolved);
}

FUZZ_ORACLE_BEGIN

/* ---- the recorder: KVM_SET_USER_MEMORY_REGION semantics ---- */

static int recorder(void *ctx, uint32_t id, uint64_t pa, uint64_t len, uint64_t va, bool readonly)
{
	struct fz *f = ctx;
	f->calls++;
	f->last_id = id, f->last_pa = pa, f->last_len = len, f->last_va = va, f->last_ro = readonly;
	int inj = f->inject;
	f->inject = INJ_NONE;
	if (id >= KVM_MAX_SLOTS || ((pa | len | va) & (PAGE - 1)) || len == 0)
		return -EINVAL;
	if (inj == INJ_EINVAL)
		return -EINVAL;
	if (inj == INJ_ENOMEM)
		return -ENOMEM;
	if (id < f->h.capacity && f->kvm[id].used) {
		struct kslot *k = &f->kvm[id];
		return k->pa == pa && k->len == len && k->va == va && k->ro == readonly ? 0 : -EINVAL;
	}
	for (uint32_t k = 0; k < f->kvm_count; k++) {
		const struct kslot *o = &f->kvm[f->kvm_used[k]];
		if (pa < o->pa + o->len && o->pa < pa + len)
			return -EEXIST;
	}
	if (id >= f->h.capacity)
		return -EINVAL; /* the engine promised capacity slots */
	f->kvm[id] = (struct kslot){ pa, len, va, readonly, true };
	f->kvm_used[f->kvm_count++] = id;
	/* Told to say EEXIST: the slot exists (someone else made it). */
	return inj == INJ_EEXIST ? -EEXIST : 0;
}

/* ---- the layout model ---- */

static bool pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Kind the host regions give va: 0..2, or -1 when excluded. */
static int host_kind(const struct header *h, uint64_t va)
{
	for (size_t i = 0; i < h->n; i++)
		if (va >= h->host[i].va && va - h->host[i].va < h->host[i].len)
			return h->host[i].kind == REGION_EXCLUDED ? -1 : (int)h->host[i].kind;
	return REGION_NORMAL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Maximal runs of one kind over [4K, 2^47 - 4K): usable bytes and run count. */
static void runs(const struct header *h, uint64_t *usable, uint64_t *count)
{
	uint64_t pts[2 * (MAX_HREG) + 2];
	size_t n = 0;
	pts[n++] = PAGE;
	pts[n++] = MAP_END;
	for (size_t i = 0; i < h->n; i++) {
		uint64_t a = h->host[i].va, b = h->host[i].va + h->host[i].len;
		if (a > PAGE && a < MAP_END)
			pts[n++] = a;
		if (b > PAGE && b < MAP_END && b > a)
			pts[n++] = b;
	}
	qsort(pts, n, sizeof(pts[0]), cmp_u64);
	*usable = 0, *count = 0;
	int prev = -2;
	for (size_t i = 0; i + 1 < n; i++) {
		if (pts[i] == pts[i + 1])
			continue;
		int k = host_kind(h, pts[i]);
		if (k >= 0) {
			*usable += pts[i + 1] - pts[i];
			if (k != prev)
				(*count)++;
		}
		prev = k;
	}
}

static bool regions_clean(const struct header *h)
{
	for (size_t i = 0; i < h->n; i++) {
		const struct region *r = &h->host[i];
		if ((r->va | r->len) & (PAGE - 1) || !r->len || r->va + r->len - 1 < r->va)
			return false;
		for (size_t j = 0; j < i; j++) {
			const struct region *q = &h->host[j];
			/* By last addresses: a region may end exactly at 2^64. */
			if (r->va <= q->va + q->len - 1 && q->va <= r->va + r->len - 1)
				return false;
		}
	}
	return true;
}

static bool regions_bad(const struct header *h)
{
	/* Definitely bad: unaligned or overlapping (both inside the VA space). */
	for (size_t i = 0; i < h->n; i++) {
		const struct region *r = &h->host[i];
		if ((r->va | r->len) & (PAGE - 1) || !r->len)
			return true;
		if (r->va + r->len - 1 < r->va)
			continue;
		for (size_t j = 0; j < i; j++) {
			const struct region *q = &h->host[j];
			if (q->va + q->len - 1 < q->va)
				continue;
			if (r->va <= q->va + q->len - 1 && q->va <= r->va + r->len - 1)
				return true;
		}
	}
	return false;
}

/* Every layout property of DESIGN.md, from the host regions alone. */
static void check_layout(struct fz *f, const struct physmap_config *c)
{
	const struct physmap *pm = &f->pm;
	uint64_t space = 1ull << c->pa_bits, bs = c->block_size;
	for (size_t i = 0; i < pm->count; i++) {
		const struct phys_region *r = &pm->regions[i];
		if (!r->len || (r->va | r->pa | r->len) & (PAGE - 1))
			fz_fail(f, "layout: region %zu va 0x%llx pa 0x%llx len 0x%llx empty or unaligned", i,
				(unsigned long long)r->va, (unsigned long long)r->pa, (unsigned long long)r->len);
		if ((r->va ^ r->pa) & (bs - 1))
			fz_fail(f, "layout: region %zu va 0x%llx pa 0x%llx not congruent modulo block 0x%llx", i,
				(unsigned long long)r->va, (unsigned long long)r->pa, (unsigned long long)bs);
		if (r->pa < c->reserved || r->pa > space || r->len > space - r->pa)
			fz_fail(f, "layout: region %zu pa 0x%llx len 0x%llx outside [0x%llx, 2^%u)", i,
				(unsigned long long)r->pa, (unsigned long long)r->len,
				(unsigned long long)c->reserved, c->pa_bits);
		if (r->va < PAGE || r->va > MAP_END || r->len > MAP_END - r->va)
			fz_fail(f, "layout: region %zu va 0x%llx len 0x%llx outside [4K, 2^47 - 4K)", i,
				(unsigned long long)r->va, (unsigned long long)r->len);
		if (r->kind != REGION_NORMAL && r->kind != REGION_RO && r->kind != REGION_MMIO)
			fz_fail(f, "layout: region %zu has kind %d", i, r->kind);
		if (i && pm->regions[i - 1].va + pm->regions[i - 1].len > r->va)
			fz_fail(f, "layout: regions %zu and %zu not sorted or overlap in VA", i - 1, i);
		for (size_t j = 0; j < i; j++) {
			const struct phys_region *q = &pm->regions[j];
			if (r->pa < q->pa + q->len && q->pa < r->pa + r->len)
				fz_fail(f, "layout: regions %zu and %zu overlap in PA (0x%llx, 0x%llx)", j, i,
					(unsigned long long)q->pa, (unsigned long long)r->pa);
		}
	}
	/* Coverage and kinds, segment by segment. */
	uint64_t pts[2 * (MAX_HREG) + 2 * (2 * MAX_HOST + 8) + 2];
	size_t n = 0;
	pts[n++] = PAGE;
	pts[n++] = MAP_END;
	for (size_t i = 0; i < f->h.n; i++) {
		uint64_t a = f->h.host[i].va, b = a + f->h.host[i].len;
		if (a > PAGE && a < MAP_END)
			pts[n++] = a;
		if (b > PAGE && b < MAP_END && b > a)
			pts[n++] = b;
	}
	for (size_t i = 0; i < pm->count; i++) {
		pts[n++] = pm->regions[i].va;
		pts[n++] = pm->regions[i].va + pm->regions[i].len;
	}
	qsort(pts, n, sizeof(pts[0]), cmp_u64);
	size_t ri = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		uint64_t x = pts[i];
		if (x == pts[i + 1] || x < PAGE || x >= MAP_END)
			continue;
		int want = host_kind(&f->h, x);
		while (ri < pm->count && pm->regions[ri].va + pm->regions[ri].len <= x)
			ri++;
		int got = ri < pm->count && pm->regions[ri].va <= x ? (int)pm->regions[ri].kind : -1;
		if (want != got)
			fz_fail(f, "layout: va 0x%llx-0x%llx should be %s, the physical map has %s",
				(unsigned long long)x, (unsigned long long)pts[i + 1],
				want < 0 ? "excluded" : kind_word((enum region_kind)want),
				got < 0 ? "nothing" : kind_word((enum region_kind)got));
	}
	if (pm->count && pm->regions[0].va < PAGE)
		fz_fail(f, "layout: page 0 is mapped");
}

/* Region of va in the physical map, by a plain scan. */
static const struct phys_region *find_va(const struct fz *f, uint64_t va)
{
	for (size_t i = 0; i < f->pm.count; i++)
		if (va >= f->pm.regions[i].va && va - f->pm.regions[i].va < f->pm.regions[i].len)
			return &f->pm.regions[i];
	return NULL;
}

static const struct phys_region *find_pa(const struct fz *f, uint64_t pa)
{
	for (size_t i = 0; i < f->pm.count; i++)
		if (pa >= f->pm.regions[i].pa && pa - f->pm.regions[i].pa < f->pm.regions[i].len)
			return &f->pm.regions[i];
	return NULL;
}

/* The block of pa: the absolute grid cell, trimmed to the region. */
static struct phys_block model_block(const struct fz *f, const struct phys_region *r, uint64_t pa)
{
	uint64_t bs = f->pm.cfg.block_size;
	uint64_t cell = pa & ~(bs - 1);
	uint64_t lo = cell > r->pa ? cell : r->pa;
	uint64_t hi = r->pa + r->len;
	if (cell + bs < hi)
		hi = cell + bs;
	return (struct phys_block){ .va = r->va + (lo - r->pa), .pa = lo, .len = hi - lo, .kind = r->kind,
				    .region = (size_t)(r - f->pm.regions) };
}

/* Distinct table positions the units need, root included (pool.c's bound,
 * counted again): per level, an entry a unit covers in part, or whole but
 * unable to be one leaf, needs the table below it. */
struct bcount {
	uint64_t pages;
	uint64_t next[4];  /* one past the highest position counted, per level */
	bool any[4];
};

static void bcount_pos(struct bcount *b, int lv, uint64_t first, uint64_t last)
{
	if (b->any[lv] && first < b->next[lv])
		first = b->next[lv];
	if (last >= first && (!b->any[lv] || last >= b->next[lv]))
		b->pages += last - first + 1;
	if (!b->any[lv] || last + 1 > b->next[lv])
		b->next[lv] = last + 1;
	b->any[lv] = true;
}

static void bcount_unit(struct bcount *b, uint64_t va, uint64_t len, uint64_t pa, bool huge_1g)
{
	for (int lv = 1; lv <= 3; lv++) {
		uint64_t s = 1ull << (12 + 9 * lv), e = va + len;
		uint64_t first = va / s, last = (e - 1) / s;
		bool leaf_ok = lv <= (huge_1g ? 2 : 1) && !((pa - va) & (s - 1));
		if (!leaf_ok) {
			bcount_pos(b, lv, first, last);
			continue;
		}
		if (va % s)
			bcount_pos(b, lv, first, first);
		if (e % s && (last != first || !(va % s)))
			bcount_pos(b, lv, last, last);
	}
}

static uint64_t model_bound(const struct fz *f, bool *ok)
{
	struct bcount b = { .pages = 1 };
	uint64_t blocks = 0;
	*ok = true;
	for (size_t i = 0; i < f->pm.count; i++) {
		const struct phys_region *r = &f->pm.regions[i];
		if (f->h.legacy) {
			bcount_unit(&b, r->va, r->len, r->pa, f->h.huge_1g);
			continue;
		}
		for (uint64_t pa = r->pa; pa < r->pa + r->len;) {
			struct phys_block k = model_block(f, r, pa);
			if (++blocks > MAX_BLOCKS) {
				*ok = false;
				return 0;
			}
			((struct fz *)f)->layout_blocks = blocks;
			bcount_unit(&b, k.va, k.len, k.pa, f->h.huge_1g);
			pa = k.pa + k.len;
		}
	}
	return b.pages;
}

/* ---- the work cap ---- */

/* Entries legacy mode writes at init for the part of the layout below x. */
static uint64_t legacy_leaves(const struct physmap *pm, uint64_t x, bool huge_1g)
{
	uint64_t n = 0;
	for (size_t i = 0; i < pm->count && pm->regions[i].va < x; i++) {
		const struct phys_region *r = &pm->regions[i];
		uint64_t len = r->va + r->len > x ? x - r->va : r->len;
		n += fuzz_map_leaves(r->va, len, r->pa - r->va, huge_1g);
	}
	return n;
}

/* Legacy builds every entry at init: where that is more than WORK_CAP,
 * scale the layout instead of dropping legacy: first a 1 GiB block size
 * (PA then 1 GiB-congruent to VA, so 1 GiB leaves), then the space cut at
 * the highest x that fits (everything from x up excluded). Both show in
 * the trace (block=, the region lines). */
static void scale_legacy(struct fz *f)
{
	struct physmap pm;
	struct region sorted[MAX_HREG];
	struct phys_region phys[2 * MAX_HOST + 8];
	size_t cap = sizeof(phys) / sizeof(phys[0]);
	struct header *h = &f->h;
	if (physmap_build(&pm, &h->cfg, h->host, h->n, sorted, phys, cap, NULL))
		return; /* checked below as it is */
	if (legacy_leaves(&pm, VA_END, h->huge_1g) <= WORK_CAP)
		return;
	uint64_t bs = h->cfg.block_size ? h->cfg.block_size : 8ull << 30;
	if (h->huge_1g && pow2(bs) && bs < SZ_1G) {
		h->cfg.block_size = SZ_1G;
		if (physmap_build(&pm, &h->cfg, h->host, h->n, sorted, phys, cap, NULL))
			return;
		if (legacy_leaves(&pm, VA_END, h->huge_1g) <= WORK_CAP)
			return;
	}
	uint64_t lo = 0, hi = VA_END / PAGE; /* the highest x = k pages that fits */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;
		if (legacy_leaves(&pm, mid * PAGE, h->huge_1g) <= WORK_CAP)
			lo = mid;
		else
			hi = mid - 1;
	}
	uint64_t x = lo * PAGE;
	size_t n = 0;
	for (size_t i = 0; i < h->n; i++) {
		struct region r = h->host[i];
		if (r.va >= x)
			continue;
		if (r.len > x - r.va)
			r.len = x - r.va;
		h->host[n++] = r;
	}
	h->host[n++] = (struct region){ x, VA_END - x, REGION_EXCLUDED };
	h->n = n;
	h->scaled = x;
}

static struct mblock *model_find(struct fz *f, uint64_t pa);

/* Work for block b: the entries a new slot writes (none where it has one,
 * or where legacy built them at init), plus BLOCK_VISIT for the lookups
 * that check it. */
#define BLOCK_VISIT 8
static uint64_t block_cost(struct fz *f, const struct phys_block *b)
{
	if (f->h.legacy || model_find(f, b->pa))
		return BLOCK_VISIT;
	return BLOCK_VISIT + fuzz_map_leaves(b->va, b->len, b->pa - b->va, f->h.huge_1g);
}

/* What the work cap does to op: 0 runs it as decoded, CUT_SKIP skips it,
 * else map_physical's length cut to the blocks that fit. Charges the work. */
static uint64_t work_cap(struct fz *f, const struct op *op)
{
	/* Past the cap an operation still gets OP_FLOOR (a small block, a
	 * check of a few blocks): the rest of the input keeps running. */
	uint64_t left = f->work < WORK_CAP ? WORK_CAP - f->work : 0, cost = 0;
	if (left < OP_FLOOR)
		left = OP_FLOOR;
	switch (op->kind) {
	case OP_FAULT_IN:
	case OP_FAULT_VA:
	case OP_FAULT_NEAR: {
		const struct region *host = physmap_host_region(&f->pm, op->va);
		const struct phys_region *r = host && host->kind != REGION_EXCLUDED ? find_va(f, op->va) : NULL;
		if (r) {
			struct phys_block b = model_block(f, r, r->pa + (op->va - r->va));
			cost = block_cost(f, &b);
		}
		break;
	}
	case OP_MAPPHYS: { /* as run_mapphys walks it: the blocks that fit */
		if (!f->pm.count)
			return 0;
		const struct phys_region *r = &f->pm.regions[op->pa % f->pm.count];
		uint64_t pa0 = r->pa + op->va, pa = pa0, len = op->len;
		if (len > 16 * f->pm.cfg.block_size)
			len = 16 * f->pm.cfg.block_size;
		uint64_t end = pa + len < pa ? ~0ull : pa + len;
		while (pa < end && (r = find_pa(f, pa))) {
			struct phys_block b = model_block(f, r, pa);
			uint64_t c = block_cost(f, &b);
			if (cost + c > left) {
				f->work += cost;
				return pa > pa0 ? pa - pa0 : CUT_SKIP;
			}
			cost += c;
			pa = b.pa + b.len;
		}
		f->work += cost;
		return len < op->len ? len : 0; /* run_mapphys' 16 blocks: as the trace */
	}
	case OP_MAPALL:
		if (f->layout_blocks > 512)
			return 0; /* skipped anyway */
		for (size_t i = 0; i < f->pm.count; i++)
			for (uint64_t pa = f->pm.regions[i].pa; pa < f->pm.regions[i].pa + f->pm.regions[i].len;) {
				struct phys_block b = model_block(f, &f->pm.regions[i], pa);
				cost += block_cost(f, &b);
				pa = b.pa + b.len;
			}
		break;
	case OP_CHECK: /* every model block looked up again */
		cost = f->nblocks * BLOCK_VISIT;
		break;
	default:
		return 0;
	}
	if (cost > left)
		return CUT_SKIP;
	f->work += cost;
	return 0;
}

/* ---- the model of slots ---- */

static uint32_t bhash_at(uint64_t pa)
{
	return (uint32_t)((pa >> 12) * 0x9e3779b97f4a7c15ull >> 52) & (BHASH - 1);
}

static struct mblock *model_find(struct fz *f, uint64_t pa)
{
	for (uint32_t h = bhash_at(pa); f->bhash[h]; h = (h + 1) & (BHASH - 1))
		if (f->blocks[f->bhash[h] - 1].pa == pa)
			return &f->blocks[f->bhash[h] - 1];
	return NULL;
}

static uint32_t model_slots(const struct fz *f)
{
	return f->nslots;
}

static void model_add(struct fz *f, const struct phys_block *b, uint32_t id, bool mmio)
{
	if (f->nblocks == f->cap_blocks) {
		f->cap_blocks = f->cap_blocks ? 2 * f->cap_blocks : 64;
		f->blocks = realloc(f->blocks, f->cap_blocks * sizeof(*f->blocks));
		if (!f->blocks)
			abort();
	}
	if (f->nblocks >= BHASH / 2)
		fz_fail(f, "harness: more than %d model blocks", BHASH / 2);
	uint32_t h = bhash_at(b->pa);
	while (f->bhash[h])
		h = (h + 1) & (BHASH - 1);
	f->bhash[h] = (int32_t)f->nblocks + 1;
	f->blocks[f->nblocks++] = (struct mblock){ b->pa, b->len, b->va, id, mmio };
	f->nslots += !mmio;
}

static uint32_t want_opts(const struct fz *f, enum region_kind k)
{
	uint32_t o = PT_R;
	if (k == REGION_NORMAL || k == REGION_MMIO)
		o |= PT_W;
	else if (f->h.exec)
		o |= PT_X;
	return o | (f->h.user ? PT_USER : 0);
}

/* The block's entries: present with the region's translation and options,
 * or absent. Probes its first, middle and last pages and the pages outside. */
static void check_entries(struct fz *f, const struct phys_block *b, bool present)
{
	uint64_t probes[3] = { b->va, b->va + ((b->len / 2) & ~(PAGE - 1)), b->va + b->len - PAGE };
	for (int i = 0; i < 3; i++) {
		struct pt_leaf leaf;
		int rc = pt_lookup(&f->pt, probes[i], &leaf);
		if (!present) {
			if (rc != -ENOENT)
				fz_fail(f, "entries: va 0x%llx of block pa 0x%llx len 0x%llx has no slot, lookup gives %d",
					(unsigned long long)probes[i], (unsigned long long)b->pa,
					(unsigned long long)b->len, rc);
			continue;
		}
		uint64_t pa = leaf.pa + (probes[i] - leaf.va);
		uint64_t want = b->pa + (probes[i] - b->va);
		if (rc || pa != want || leaf.opts != want_opts(f, b->kind))
			fz_fail(f, "entries: va 0x%llx of block pa 0x%llx len 0x%llx: lookup %d pa 0x%llx opts 0x%x, want "
				   "pa 0x%llx opts 0x%x",
				(unsigned long long)probes[i], (unsigned long long)b->pa, (unsigned long long)b->len, rc,
				(unsigned long long)pa, rc ? 0 : leaf.opts, (unsigned long long)want,
				want_opts(f, b->kind));
	}
	if (!present) {
		bool empty = false;
		if (pt_is_empty(&f->pt, b->va, b->len, &empty) || !empty)
			fz_fail(f, "entries: block pa 0x%llx va 0x%llx len 0x%llx has no slot but is not empty",
				(unsigned long long)b->pa, (unsigned long long)b->va, (unsigned long long)b->len);
	}
	if (f->pool.used > f->bound)
		fz_fail(f, "accounting: pool used %u above the bound %llu", f->pool.used,
			(unsigned long long)f->bound);
}

static void check_all(struct fz *f, bool full)
{
	/* check_slots walks every leaf: at the end always (the work cap keeps
	 * the tree small), on `check` ops while the input's budget lasts. */
	bool now = full || f->checked + f->pool.used <= CHECK_BUDGET;
	if (!full && now)
		f->checked += f->pool.used;
	const char *bad = now ? check_slots(&f->slots, f->buf, sizeof(f->buf)) : NULL;
	if (bad)
		fz_fail(f, "check_slots: %s", bad);
	if (f->slots.count != model_slots(f) || f->kvm_count != model_slots(f))
		fz_fail(f, "slots: engine has %u, KVM %u, the model %u", f->slots.count, f->kvm_count,
			model_slots(f));
	for (size_t i = 0; i < f->nblocks; i++) {
		const struct mblock *m = &f->blocks[i];
		const struct phys_region *r = find_pa(f, m->pa);
		struct phys_block b = model_block(f, r, m->pa);
		check_entries(f, &b, true);
		if (!m->mmio && (!slots_has_slot(&f->slots, m->pa) || !f->kvm[m->id].used ||
				 f->kvm[m->id].pa != m->pa || f->kvm[m->id].len != m->len))
			fz_fail(f, "slots: block pa 0x%llx should have slot %u", (unsigned long long)m->pa, m->id);
	}
}

/* Services one block as slots_map_physical / slots_fault should, given the
 * engine's answer; checks the answer and the recorder's call. */
static void expect_block(struct fz *f, const struct phys_block *b, int rc, const struct slots_result *res,
			 unsigned calls0, int inj)
{
	const char *what = "block";
	struct mblock *m = model_find(f, b->pa);
	bool called = f->calls != calls0;
	if (b->kind == REGION_MMIO) {
		/* Entries and never a slot; "already" once they are there. */
		enum slots_outcome want = m || f->h.legacy ? SLOTS_ALREADY : SLOTS_MMIO;
		if (rc || res->outcome != want || res->pa != b->pa || res->len != b->len || called)
			fz_fail(f, "%s pa 0x%llx len 0x%llx is mmio: got %d outcome %d pa 0x%llx len 0x%llx%s", what,
				(unsigned long long)b->pa, (unsigned long long)b->len, rc, rc ? 0 : res->outcome,
				(unsigned long long)res->pa, (unsigned long long)res->len,
				called ? " and a slot callback" : "");
		if (!m)
			model_add(f, b, 0, true);
		check_entries(f, b, true);
		return;
	}
	if (m) {
		if (rc || res->outcome != SLOTS_ALREADY || res->slot != m->id || called)
			fz_fail(f, "%s pa 0x%llx has slot %u: got %d outcome %d slot %u%s", what,
				(unsigned long long)b->pa, m->id, rc, rc ? 0 : res->outcome, rc ? 0 : res->slot,
				called ? " and a slot callback" : "");
		check_entries(f, b, true);
		return;
	}
	uint32_t id = model_slots(f);
	if (id == f->h.capacity) {
		if (rc != -ENOSPC || called)
			fz_fail(f, "%s pa 0x%llx: the slot table (%u) is full: got %d%s", what,
				(unsigned long long)b->pa, f->h.capacity, rc, called ? " and a slot callback" : "");
		check_entries(f, b, f->h.legacy);
		return;
	}
	if (!called || f->calls != calls0 + 1)
		fz_fail(f, "%s pa 0x%llx len 0x%llx needs a new slot: %u callbacks (rc %d)", what,
			(unsigned long long)b->pa, (unsigned long long)b->len, f->calls - calls0, rc);
	if (f->last_id != id || f->last_pa != b->pa || f->last_len != b->len || f->last_va != b->va ||
	    f->last_ro != (b->kind == REGION_RO))
		fz_fail(f, "%s: slot callback id %u pa 0x%llx len 0x%llx va 0x%llx ro %d, want id %u pa 0x%llx len "
			   "0x%llx va 0x%llx ro %d",
			what, f->last_id, (unsigned long long)f->last_pa, (unsigned long long)f->last_len,
			(unsigned long long)f->last_va, f->last_ro, id, (unsigned long long)b->pa,
			(unsigned long long)b->len, (unsigned long long)b->va, b->kind == REGION_RO);
	int want = inj == INJ_EINVAL ? -EINVAL : inj == INJ_ENOMEM ? -ENOMEM : 0;
	if (rc != want)
		fz_fail(f, "%s pa 0x%llx: callback %s, got %d want %d", what, (unsigned long long)b->pa, inj_name[inj],
			rc, want);
	if (rc) {
		check_entries(f, b, f->h.legacy);
		return;
	}
	if (res->outcome != SLOTS_NEW || res->slot != id || res->pa != b->pa || res->len != b->len)
		fz_fail(f, "%s pa 0x%llx: outcome %d slot %u pa 0x%llx len 0x%llx, want new slot %u", what,
			(unsigned long long)b->pa, res->outcome, res->slot, (unsigned long long)res->pa,
			(unsigned long long)res->len, id);
	model_add(f, b, id, false);
	check_entries(f, b, true);
}

static void run_fault(struct fz *f, uint64_t va)
{
	/* As kvmrt (and kvmpt-trace): only memory the host has mapped faults. */
	const struct region *host = physmap_host_region(&f->pm, va);
	const struct region *want_host = NULL;
	for (size_t i = 0; i < f->h.n; i++)
		if (va >= f->h.host[i].va && va - f->h.host[i].va < f->h.host[i].len)
			want_host = &f->h.host[i];
	if ((host == NULL) != (want_host == NULL) ||
	    (host && (host->va != want_host->va || host->len != want_host->len || host->kind != want_host->kind)))
		fz_fail(f, "physmap_host_region(0x%llx) gives %s, want %s", (unsigned long long)va,
			host ? "a region" : "none", want_host ? "a region" : "none");
	const struct phys_region *r = find_va(f, va);
	uint64_t pa = 0;
	int trc = physmap_translate(&f->pm, va, &pa);
	if (!r ? trc != -EFAULT : (trc || pa != r->pa + (va - r->va)))
		fz_fail(f, "physmap_translate(0x%llx) gives %d pa 0x%llx, want %s 0x%llx", (unsigned long long)va, trc,
			(unsigned long long)pa, r ? "pa" : "EFAULT", r ? (unsigned long long)(r->pa + (va - r->va)) : 0ull);
	if (!host || host->kind == REGION_EXCLUDED)
		return;
	struct slots_result res = { 0 };
	unsigned calls0 = f->calls;
	int inj = f->inject;
	int rc = slots_fault(&f->slots, va, &res);
	if (!r) {
		if (rc != -EFAULT || f->calls != calls0)
			fz_fail(f, "fault 0x%llx outside the physical map returned %d", (unsigned long long)va, rc);
		return;
	}
	struct phys_block b = model_block(f, r, r->pa + (va - r->va));
	struct phys_block eb;
	if (physmap_fault_block(&f->pm, b.pa, &eb) || eb.pa != b.pa || eb.len != b.len || eb.va != b.va ||
	    eb.kind != b.kind)
		fz_fail(f, "physmap_fault_block(0x%llx): pa 0x%llx va 0x%llx len 0x%llx, want pa 0x%llx va 0x%llx len "
			   "0x%llx",
			(unsigned long long)b.pa, (unsigned long long)eb.pa, (unsigned long long)eb.va,
			(unsigned long long)eb.len, (unsigned long long)b.pa, (unsigned long long)b.va,
			(unsigned long long)b.len);
	expect_block(f, &b, rc, &res, calls0, inj);
	f->inject = INJ_NONE;
}

static void run_mapphys(struct fz *f, uint64_t pa, uint64_t len)
{
	/* Walk the blocks one at a time so that each is predicted. */
	if (len > 16 * f->pm.cfg.block_size)
		len = 16 * f->pm.cfg.block_size; /* bounded work per operation */
	uint64_t end = pa + len;
	if (end < pa)
		end = ~0ull;
	while (pa < end) {
		const struct phys_region *r = find_pa(f, pa);
		struct slots_result res = { 0 };
		unsigned calls0 = f->calls;
		int inj = f->inject;
		if (!r) {
			int rc = slots_map_physical(&f->slots, pa, PAGE, &res);
			if (rc != -EFAULT || f->calls != calls0)
				fz_fail(f, "map_physical pa 0x%llx outside the map returned %d", (unsigned long long)pa,
					rc);
			return;
		}
		struct phys_block b = model_block(f, r, pa);
		uint64_t n = b.pa + b.len - pa;
		if (n > end - pa)
			n = end - pa;
		int rc = slots_map_physical(&f->slots, pa, n, &res);
		expect_block(f, &b, rc, &res, calls0, inj);
		f->inject = INJ_NONE;
		if (rc)
			return;
		pa = b.pa + b.len;
	}
}

/* One map_physical call over a whole region: the blocks are served in PA
 * order, each as expect_block predicts, until the first error. */
static void run_mapall_region(struct fz *f, const struct phys_region *r)
{
	struct slots_result res = { 0 };
	unsigned calls0 = f->calls;
	uint32_t kvm0 = f->kvm_count;
	int inj = f->inject;
	int rc = slots_map_physical(&f->slots, r->pa, r->len, &res);
	f->inject = INJ_NONE;
	unsigned news = 0;
	int want = 0;
	for (uint64_t pa = r->pa; pa < r->pa + r->len;) {
		struct phys_block b = model_block(f, r, pa);
		pa = b.pa + b.len;
		if (b.kind == REGION_MMIO) {
			if (!model_find(f, b.pa))
				model_add(f, &b, 0, true);
			check_entries(f, &b, true);
			continue;
		}
		if (model_find(f, b.pa)) {
			check_entries(f, &b, true);
			continue;
		}
		uint32_t id = model_slots(f);
		if (id == f->h.capacity) {
			want = -ENOSPC;
			check_entries(f, &b, f->h.legacy);
			break;
		}
		news++;
		if (news == 1 && (inj == INJ_EINVAL || inj == INJ_ENOMEM)) {
			want = inj == INJ_EINVAL ? -EINVAL : -ENOMEM;
			check_entries(f, &b, f->h.legacy);
			break;
		}
		const struct kslot *k = id < f->h.capacity ? &f->kvm[id] : NULL;
		if (!k || !k->used || k->pa != b.pa || k->len != b.len || k->va != b.va || k->ro != (b.kind == REGION_RO))
			fz_fail(f, "map_physical of region pa 0x%llx len 0x%llx: block pa 0x%llx len 0x%llx should be slot %u",
				(unsigned long long)r->pa, (unsigned long long)r->len, (unsigned long long)b.pa,
				(unsigned long long)b.len, id);
		model_add(f, &b, id, false);
		check_entries(f, &b, true);
	}
	if (rc != want || f->calls - calls0 != news)
		fz_fail(f, "map_physical of region pa 0x%llx len 0x%llx returned %d with %u callbacks, want %d with %u",
			(unsigned long long)r->pa, (unsigned long long)r->len, rc, f->calls - calls0, want, news);
	(void)kvm0;
}

FUZZ_ORACLE_END

/* ---- live tables: the vCPU model ---- */

static void live_check(struct fz *f, const char *after)
{
	if (!f->h.live)
		return;
	const char *bad = tlb_check(&f->tlb, f->buf, sizeof(f->buf));
	if (bad)
		fz_fail(f, "after %s: %s", after, bad);
}

static uint64_t live_walk_va(const struct fz *f, const struct op *op)
{
	if (op->raw)
		return op->va;
	if (!f->nblocks)
		return op->va * PAGE;
	const struct mblock *m = &f->blocks[op->pa % f->nblocks];
	return m->va + ((op->va * PAGE) % m->len & ~(PAGE - 1));
}

/* A vCPU's access: through its caches or a walk; it must agree with the
 * engine's own lookup, and may never go through a freed or reused page. */
static void run_walk(struct fz *f, unsigned v, uint64_t va)
{
	struct tlb_tr tr;
	enum tlb_source src;
	struct pt_leaf leaf;
	int rc = tlb_walk(&f->tlb, v, va, &tr, &src, f->buf, sizeof(f->buf));
	if (rc == -EFAULT)
		fz_fail(f, "vcpu %u walk 0x%llx: %s", v, (unsigned long long)va, f->buf);
	if (rc == -EINVAL)
		return;
	int lr = pt_lookup(&f->pt, va, &leaf);
	uint64_t pa = lr ? 0 : leaf.pa + ((va & ~(PAGE - 1)) - leaf.va);
	if ((rc == 0) != (lr == 0) || (rc == 0 && (tr.pa != pa || tr.opts != leaf.opts)))
		fz_fail(f, "vcpu %u walk 0x%llx gives %d pa 0x%llx, pt_lookup %d pa 0x%llx", v, (unsigned long long)va, rc,
			(unsigned long long)tr.pa, lr, (unsigned long long)pa);
}

/* ---- the hooks ---- */

/* Memory reused by every input (each starts from an empty model; only the
 * allocations survive, so that no input pays for them): the model, the
 * recorder and one pool with room for the largest bound an input may use,
 * reserved once (its pages are touched as inputs use them, and pool_reset
 * costs what the last input used). */
static struct fz fz_state;

int fuzz_init(void)
{
	if (pool_init_mmap(&fz_state.pool, 1u << 20, 0x1000)) {
		fprintf(stderr, "fuzz_slots: cannot reserve the pool\n");
		return 1;
	}
	return 0;
}

#ifdef FUZZ_SLOTS_READER
/* The replay-tsan build: a second thread asks "has this block a slot?" while
 * the input creates slots, as another vCPU's fault handler does. One thread
 * can never observe the order of stores that publish a slot; under
 * ThreadSanitizer this one makes a publication-order bug in the lock-free
 * index a reported race. */
static void *reader_loop(void *arg)
{
	struct fz *f = arg;
	const struct physmap *pm = &f->pm;
	unsigned long hits = 0;
	while (!__atomic_load_n(&f->reader_stop, __ATOMIC_ACQUIRE)) {
		for (size_t i = 0; i < pm->count; i++) {
			const struct phys_region *r = &pm->regions[i];
			uint64_t n = 0;
			for (uint64_t off = 0; off < r->len && n < 64; off += pm->cfg.block_size, n++)
				hits += slots_has_slot(&f->slots, r->pa + off);
		}
	}
	return (void *)hits;
}

static void reader_start(struct fz *f)
{
	if (pthread_create(&f->reader, NULL, reader_loop, f) == 0)
		f->have_reader = true;
}

static void reader_stop(struct fz *f)
{
	if (!f->have_reader)
		return;
	__atomic_store_n(&f->reader_stop, 1, __ATOMIC_RELEASE);
	pthread_join(f->reader, NULL);
	f->have_reader = false;
}
#else
static void reader_start(struct fz *f) { (void)f; }
static void reader_stop(struct fz *f) { (void)f; }
#endif

static int32_t fz_bhash[BHASH];
static struct kslot fz_kvm[512];
static uint32_t fz_kvm_used[512];

static void teardown(struct fz *f)
{
	reader_stop(f);
	if (f->have_slots)
		slots_destroy(&f->slots);
	/* pt_destroy gives every page back (checked) on small trees; the next
	 * input's pool_reset clears what is left. */
	if (f->have_pt && f->pool.used <= CHECK_BUDGET) {
		pt_destroy(&f->pt);
		pool_reclaim(&f->pool, UINT64_MAX); /* live: nothing runs any more */
		if (f->pool.used)
			fz_fail(f, "accounting: pt_destroy left %u pages in use", f->pool.used);
	}
	/* Empty the reused model and recorder: what this input filled. */
	for (size_t i = 0; i < f->nblocks; i++) {
		uint32_t h = bhash_at(f->blocks[i].pa);
		while (f->bhash[h] != (int32_t)i + 1)
			h = (h + 1) & (BHASH - 1);
		f->bhash[h] = 0;
	}
	for (uint32_t k = 0; k < f->kvm_count; k++)
		f->kvm[f->kvm_used[k]] = (struct kslot){ 0 };
}

int fuzz_one(const uint8_t *data, size_t size, FILE *trace)
{
	struct fz *f = &fz_state;
	struct mblock *blocks = f->blocks;
	size_t cap_blocks = f->cap_blocks;
	struct pool pool = f->pool;
	memset(f, 0, sizeof(*f));
	f->blocks = blocks, f->cap_blocks = cap_blocks, f->pool = pool;
	f->bhash = fz_bhash, f->kvm = fz_kvm, f->kvm_used = fz_kvm_used;
	f->data = data;
	f->size = size;
	struct fuzz_in in = { data, size };
	dec_header(&in, &f->h);

	/* Keep the block count small enough to enumerate (bound, model). */
	struct physmap_config c = f->h.cfg;
	uint64_t usable, nruns;
	runs(&f->h, &usable, &nruns);
	if (pow2(c.block_size) || !c.block_size) {
		uint64_t bs = c.block_size ? c.block_size : 8ull << 30;
		while (bs < (1ull << 46) && usable / bs + nruns > MAX_BLOCKS / 2)
			bs <<= 1;
		/* A fault writes block/leaf entries: keep that in the thousands. */
		uint64_t max = f->h.huge_1g ? 1ull << 40 : 8ull << 30;
		if (bs > max)
			bs = max;
		if (bs != (c.block_size ? c.block_size : 8ull << 30))
			f->h.cfg.block_size = c.block_size = bs;
	}
	if (f->h.legacy) {
		scale_legacy(f);
		c = f->h.cfg;
		runs(&f->h, &usable, &nruns);
	}
	if (trace)
		print_header(trace, &f->h);

	const char *why = NULL;
	int rc = physmap_build(&f->pm, &c, f->h.host, f->h.n, f->sorted, f->phys,
			       sizeof(f->phys) / sizeof(f->phys[0]), &why);
	struct physmap_config eff = { c.block_size ? c.block_size : 8ull << 30, c.reserved ? c.reserved : 4ull << 30,
				      c.pa_bits ? c.pa_bits : 48 };
	bool cfg_clean = pow2(eff.block_size) && eff.block_size >= SZ_2M && eff.pa_bits >= 36 && eff.pa_bits <= 52 &&
			 eff.block_size <= (1ull << eff.pa_bits) && eff.reserved < (1ull << eff.pa_bits);
	bool cfg_bad = !pow2(eff.block_size) || eff.block_size < SZ_2M || eff.pa_bits > 52;
	if (rc == -EINVAL) {
		if (regions_clean(&f->h) && cfg_clean)
			fz_fail(f, "physmap_build refused clean regions and config: %s", why ? why : "?");
		goto out;
	}
	if (regions_bad(&f->h) || cfg_bad)
		fz_fail(f, "physmap_build returned %d for %s", rc, cfg_bad ? "a bad config" : "bad regions");
	if (rc == -E2BIG) {
		uint64_t space = 1ull << eff.pa_bits;
		if (eff.reserved + usable + (nruns + 1) * eff.block_size <= space)
			fz_fail(f, "physmap_build says E2BIG, but 0x%llx bytes in %llu runs fit in 2^%u above 0x%llx",
				(unsigned long long)usable, (unsigned long long)nruns, eff.pa_bits,
				(unsigned long long)eff.reserved);
		goto out;
	}
	if (rc)
		fz_fail(f, "physmap_build returned %d: %s", rc, why ? why : "?");
	f->have_pm = true;
	if (eff.reserved + usable > (1ull << eff.pa_bits))
		fz_fail(f, "physmap_build fitted 0x%llx bytes above 0x%llx into 2^%u", (unsigned long long)usable,
			(unsigned long long)eff.reserved, eff.pa_bits);
	if (f->pm.cfg.block_size != eff.block_size || f->pm.cfg.reserved != eff.reserved ||
	    f->pm.cfg.pa_bits != eff.pa_bits)
		fz_fail(f, "physmap config defaults: block 0x%llx reserved 0x%llx bits %u",
			(unsigned long long)f->pm.cfg.block_size, (unsigned long long)f->pm.cfg.reserved,
			f->pm.cfg.pa_bits);
	check_layout(f, &eff);

	/* The bound, counted here, and the pool it sizes. */
	bool ok;
	uint64_t want_bound = model_bound(f, &ok);
	if (!ok || f->h.legacy)
		f->layout_blocks = ok ? f->layout_blocks : MAX_BLOCKS + 1;
	rc = physmap_bound(&f->pm, f->h.legacy, 4, f->h.huge_1g, &f->bound);
	if (rc)
		fz_fail(f, "physmap_bound returned %d", rc);
	if (ok && f->bound != want_bound)
		fz_fail(f, "physmap_bound %llu, the fault blocks need exactly %llu table pages",
			(unsigned long long)f->bound, (unsigned long long)want_bound);
	if (f->bound > (1u << 20))
		goto out;
	if (pool_reset(&f->pool, (uint32_t)f->bound, 0x1000))
		fz_fail(f, "pool_reset(%llu) failed", (unsigned long long)f->bound);
	if (f->h.live && pool_defer(&f->pool))
		fz_fail(f, "pool_defer failed");
	rc = pt_init(&f->pt, &f->pool, 4, f->h.huge_1g);
	if (rc)
		fz_fail(f, "pt_init in a pool of the bound (%llu) returned %d", (unsigned long long)f->bound, rc);
	f->have_pt = true;
	if (f->h.live && tlb_init(&f->tlb, &f->pt, LIVE_VCPUS))
		fz_fail(f, "tlb_init failed");
	unsigned flags = (f->h.legacy ? SLOTS_LEGACY : 0) | (f->h.user ? SLOTS_USER : 0) | (f->h.exec ? SLOTS_EXEC : 0);
	rc = slots_init(&f->slots, &f->pt, &f->pm, f->h.capacity, flags, recorder, f);
	if (rc)
		fz_fail(f, "slots_init returned %d (pool of the bound: %llu pages)", rc, (unsigned long long)f->bound);
	f->have_slots = true;
	reader_start(f);
	if (f->h.legacy) {
		/* Every region's entries are there from the start. */
		for (size_t i = 0; i < f->pm.count; i++) {
			const struct phys_region *r = &f->pm.regions[i];
			struct phys_block whole = { .va = r->va, .pa = r->pa, .len = r->len, .kind = r->kind };
			check_entries(f, &whole, true);
		}
	}

	uint64_t last_va = 0;
	struct op op;
	if (f->h.legacy)
		f->work = legacy_leaves(&f->pm, VA_END, f->h.huge_1g);
	while (in.left && f->nop < MAX_OPS) {
		dec_op(&in, &f->h, &last_va, &op);
		/* The work cap: an operation that would take the input past
		 * WORK_CAP entries is cut (map_physical: to the blocks that fit)
		 * or skipped; the trace says which. */
		f->cut[f->nop] = work_cap(f, &op);
		f->nop++;
		if (op.kind == OP_VCPU_WALK)
			f->resolved[f->nop - 1] = live_walk_va(f, &op);
		if (op.kind == OP_MAPALL)
			f->resolved[f->nop - 1] = f->layout_blocks > 512;
		if (trace)
			print_cut_op(trace, f, &op, f->cut[f->nop - 1], f->resolved[f->nop - 1]);
		if (f->cut[f->nop - 1] == CUT_SKIP)
			continue;
		if (f->cut[f->nop - 1])
			op.len = f->cut[f->nop - 1];
		switch (op.kind) {
		case OP_VCPU_WALK:
			run_walk(f, op.vcpu, f->resolved[f->nop - 1]);
			break;
		case OP_VCPU_FLUSH:
			tlb_flush_point(&f->tlb, op.vcpu);
			break;
		case OP_FAULT_IN:
		case OP_FAULT_VA:
		case OP_FAULT_NEAR:
			run_fault(f, op.va);
			break;
		case OP_MAPPHYS: {
			if (!f->pm.count)
				break;
			const struct phys_region *r = &f->pm.regions[op.pa % f->pm.count];
			run_mapphys(f, r->pa + op.va, op.len);
			break;
		}
		case OP_INJECT:
			f->inject = op.inject;
			break;
		case OP_CHECK:
			check_all(f, false);
			break;
		case OP_MAPALL:
			if (f->layout_blocks > 512)
				break; /* bounded work per input */
			for (size_t i = 0; i < f->pm.count; i++)
				run_mapall_region(f, &f->pm.regions[i]);
			break;
		}
		live_check(f, "this operation");
	}
	if (trace)
		fprintf(trace, "check\n");
	check_all(f, true);
out:
	teardown(f);
	return 0;
}

/* ---- the encoder: text trace -> bytes ----
 * Understood: `pool N 1g=off` (only the 1g flag), `region VA LEN [kind]`
 * (raw placement), `layout [block=] [reserved=] [physbits=] [slots=]
 * [legacy]` (the values must be ones the header can say), `fault VA` (raw),
 * `check`, `vcpus N` (live mode, always 3 vCPUs), `vcpu N walk VA` (raw),
 * `vcpu N flush`, and the comments `# flags user|exec`, `# inject ERR`,
 * `# mapall`. */

static int enc_pow(uint64_t bs, uint8_t *b)
{
	if (!bs)
		return *b = 0, 0;
	for (unsigned i = 1; i < 0xf8; i++)
		if (1ull << (21 + (i - 1) % 27) == bs)
			return *b = (uint8_t)i, 0;
	for (unsigned i = 0; i < 8; i++)
		if (ODD_BLOCK[i] == bs)
			return *b = (uint8_t)(0xf8 + i), 0;
	return -1;
}

int fuzz_encode(const char *text, struct fuzz_out *out, char *err, size_t errlen)
{
	uint8_t flags = 0, bs = 0, rs = 0, pb = 0, cap = 0;
	uint8_t regbytes[MAX_HOST * 11];
	size_t rlen = 0, nreg = 0;
	uint8_t ops[4096];
	size_t olen = 0;
	bool laid = false;
	unsigned lineno = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char line[512];
		snprintf(line, sizeof(line), "%.*s", (int)(n < 511 ? n : 511), p);
		p += n + (nl ? 1 : 0);
		lineno++;
		char *w[8] = { 0 };
		int nw = 0;
		char *save = NULL;
		for (char *tok = strtok_r(line, " \t\r", &save); tok && nw < 8; tok = strtok_r(NULL, " \t\r", &save))
			w[nw++] = tok;
		if (!nw)
			continue;
		if (!strcmp(w[0], "#")) {
			if (nw >= 3 && !strcmp(w[1], "flags")) {
				for (int i = 2; i < nw; i++)
					flags |= !strcmp(w[i], "user") ? 2 : !strcmp(w[i], "exec") ? 4 : 0;
			} else if (nw >= 3 && !strcmp(w[1], "inject")) {
				int k = !strcmp(w[2], "EINVAL") ? 1 : !strcmp(w[2], "ENOMEM") ? 2 : !strcmp(w[2], "EEXIST") ? 3 : 0;
				if (olen + 2 > sizeof(ops))
					goto full;
				ops[olen++] = OP_INJECT, ops[olen++] = (uint8_t)k;
			} else if (nw >= 2 && !strcmp(w[1], "mapall")) {
				if (olen + 1 > sizeof(ops))
					goto full;
				ops[olen++] = OP_MAPALL;
			}
			continue;
		}
		if (!strcmp(w[0], "inject") && nw >= 2) {
			int k = !strcmp(w[1], "EINVAL") ? 1 : !strcmp(w[1], "ENOMEM") ? 2 : !strcmp(w[1], "EEXIST") ? 3 : 0;
			if (olen + 2 > sizeof(ops))
				goto full;
			ops[olen++] = OP_INJECT, ops[olen++] = (uint8_t)k;
			continue;
		}
		if (!strcmp(w[0], "vcpus")) {
			flags |= 0x10; /* live tables: always LIVE_VCPUS simulated vCPUs */
			continue;
		}
		if (!strcmp(w[0], "vcpu") && nw >= 3) {
			unsigned v = (unsigned)strtoul(w[1], NULL, 0) % LIVE_VCPUS;
			if (!strcmp(w[2], "flush") && nw == 3) {
				if (olen + 2 > sizeof(ops))
					goto full;
				ops[olen++] = OP_VCPU_FLUSH, ops[olen++] = (uint8_t)v;
				continue;
			}
			if (!strcmp(w[2], "walk") && nw == 4) {
				uint64_t va = strtoull(w[3], NULL, 0);
				if (olen + 10 > sizeof(ops))
					goto full;
				ops[olen++] = OP_VCPU_WALK, ops[olen++] = (uint8_t)(0x80 | v);
				for (int i = 0; i < 8; i++)
					ops[olen++] = (uint8_t)(va >> (8 * i));
				continue;
			}
			snprintf(err, errlen, "line %u: vcpu N walk VA | vcpu N flush", lineno);
			return -1;
		}
		if (!strcmp(w[0], "mapall")) {
			if (olen + 1 > sizeof(ops))
				goto full;
			ops[olen++] = OP_MAPALL;
			continue;
		}
		if (w[0][0] == '#' || !strcmp(w[0], "stats"))
			continue;
		if (!strcmp(w[0], "pool")) {
			if (nw > 2 && !strcmp(w[2], "1g=off"))
				flags |= 8;
		} else if (!strcmp(w[0], "region") && nw >= 3 && !laid) {
			if (nreg == MAX_HOST) {
				snprintf(err, errlen, "line %u: more than %d regions", lineno, MAX_HOST);
				return -1;
			}
			uint64_t va = strtoull(w[1], NULL, 0), len = strtoull(w[2], NULL, 0);
			unsigned kind = nw > 3 ? (!strcmp(w[3], "ro") ? 1 : !strcmp(w[3], "mmio") ? 2 : 3) : 0;
			/* Raw placement, length as count * unit + pages. */
			int unit = -1;
			uint64_t cnt = 0;
			int64_t pg = 0;
			for (int u = 3; u >= 0 && unit < 0; u--) {
				cnt = len / UNITS[u];
				for (uint64_t c = cnt; c <= cnt + 1 && unit < 0; c++) {
					if (c >= 64)
						continue;
					int64_t g = ((int64_t)len - (int64_t)(c * UNITS[u])) / (int64_t)PAGE;
					if (g >= -128 && g < 128 && c * UNITS[u] + (uint64_t)g * PAGE == len && len)
						unit = u, cnt = c, pg = g;
				}
			}
			if (va < VA_END && va + len == VA_END)
				unit = 0, cnt = 0xc0, pg = 0; /* to the end of the lower half */
			if (unit < 0 || (va & 0xfff)) {
				snprintf(err, errlen, "line %u: region length 0x%llx or va not encodable", lineno,
					 (unsigned long long)len);
				return -1;
			}
			regbytes[rlen++] = (uint8_t)(kind | 3u << 2 | (unsigned)unit << 4);
			for (int i = 0; i < 8; i++)
				regbytes[rlen++] = (uint8_t)(va >> (8 * i));
			regbytes[rlen++] = (uint8_t)cnt;
			regbytes[rlen++] = (uint8_t)pg;
			nreg++;
		} else if (!strcmp(w[0], "layout") && !laid) {
			laid = true;
			for (int i = 1; i < nw; i++) {
				char *eq = strchr(w[i], '=');
				uint64_t v = eq ? strtoull(eq + 1, NULL, 0) : 0;
				if (!strcmp(w[i], "legacy"))
					flags |= 0xc1;
				else if (!strcmp(w[i], "user") || !strcmp(w[i], "exec"))
					flags |= !strcmp(w[i], "user") ? 2 : 4;
				else if (!strncmp(w[i], "block=", 6)) {
					if (enc_pow(v, &bs))
						goto bad;
				} else if (!strncmp(w[i], "reserved=", 9)) {
					if (v == 1)
						rs = 1;
					else if (v && !(v & ((1ull << 26) - 1)) && (v >> 26) + 1 < 0xfc)
						rs = (uint8_t)((v >> 26) + 1);
					else
						goto bad;
				} else if (!strncmp(w[i], "physbits=", 9)) {
					if (v == 48)
						pb = 0;
					else if (v >= 36 && v <= 51)
						pb = (uint8_t)(0xe0 + (v - 36));
					else
						goto bad;
				} else if (!strncmp(w[i], "slots=", 6)) {
					if (v == 512)
						cap = 0;
					else if (v >= 1 && v <= 128)
						cap = (uint8_t)(0x80 | (v - 1));
					else
						goto bad;
				} else {
					goto bad;
				}
			}
		} else if (!strcmp(w[0], "fault") && nw == 2) {
			uint64_t va = strtoull(w[1], NULL, 0);
			if (olen + 9 > sizeof(ops))
				goto full;
			ops[olen++] = OP_FAULT_VA;
			for (int i = 0; i < 8; i++)
				ops[olen++] = (uint8_t)(va >> (8 * i));
		} else if (!strcmp(w[0], "check") && nw == 1) {
			if (olen + 1 > sizeof(ops))
				goto full;
			ops[olen++] = OP_CHECK;
		} else {
			snprintf(err, errlen, "line %u: fuzz_slots cannot encode '%s'", lineno, w[0]);
			return -1;
		}
		continue;
bad:
		snprintf(err, errlen, "line %u: layout option not encodable", lineno);
		return -1;
	}
	uint8_t hdr[7] = { flags, bs, rs, pb, cap, 0, (uint8_t)nreg };
	if (fuzz_put(out, hdr, 7) || fuzz_put(out, regbytes, rlen) || fuzz_put(out, ops, olen))
		goto full;
	return 0;
full:
	snprintf(err, errlen, "line %u: output full", lineno);
	return -1;
}

/* ---- structure for the structure-aware mutator (fuzz/mutator.c) ---- */

enum { ENC_REGION_VA = 1, ENC_FAULT };

#define HDR_BYTES 7

/* Region records as dec_header reads them: spans and the placement field
 * (sel + its operands) with the VA it decoded to. cursor as dec_header's. */
static void describe_regions(const uint8_t *data, size_t size, struct fuzz_shape *s, size_t want, uint64_t cursor)
{
	struct fuzz_in in = { data + HDR_BYTES, size > HDR_BYTES ? size - HDR_BYTES : 0 };
	for (size_t i = 0; i < want && in.left && s->nitem < FUZZ_MAX_ITEMS; i++) {
		struct fuzz_in a = in;
		uint8_t sel = fuzz_u8(&in);
		uint64_t unit = UNITS[(sel >> 4) & 3], va;
		switch ((sel >> 2) & 3) {
		case 0:
			va = cursor;
			break;
		case 1:
			va = cursor + fuzz_u8(&in) * PAGE;
			va += (fuzz_u8(&in) % 4) * unit;
			break;
		case 2:
			va = cursor - (1 + fuzz_u8(&in)) * PAGE;
			break;
		default:
			va = fuzz_u64(&in) & ~(PAGE - 1);
			break;
		}
		struct fuzz_in p = in;
		uint8_t cnt = fuzz_u8(&in);
		uint64_t len = (cnt >= 0xc0 ? VA_END - va : (cnt % 64) * unit) + sx8(fuzz_u8(&in)) * PAGE;
		if (len == 0 || len > (1ull << 62))
			len = PAGE;
		struct fuzz_item *it = &s->item[s->nitem++];
		uint32_t off = (uint32_t)(a.p - data);
		*it = (struct fuzz_item){ .off = off, .len = (uint32_t)(in.p - a.p), .list = 1, .nfield = 2 };
		it->f[0] = (struct fuzz_field){ .off = off, .len = (uint32_t)(p.p - a.p), .cls = FUZZ_F_VALUE,
						.enc = ENC_REGION_VA, .value = va };
		it->f[1] = (struct fuzz_field){ .off = off, .len = 1, .cls = FUZZ_F_BITS, .flipmask = 0x03 };
		if ((sel >> 6) == 3)
			va += 0x800;
		cursor = va + len;
	}
}

void fuzz_describe(const uint8_t *data, size_t size, struct fuzz_shape *s)
{
	struct fuzz_in in = { data, size };
	struct header *h = malloc(sizeof(*h));
	if (!h)
		abort();
	s->nitem = 0;
	s->nhdr = 0;
	s->count_off[0] = -1;
	s->count_off[1] = 6;  /* nregions */
	s->count_max[0] = MAX_OPS;
	s->count_max[1] = MAX_HOST;
	s->list_start[1] = HDR_BYTES;
	if (size)  /* flags: legacy, user, exec, 1 GiB leaves off, live */
		s->hdr[s->nhdr++] = (struct fuzz_field){ .off = 0, .len = 1, .cls = FUZZ_F_BITS, .flipmask = 0x1f };
	dec_header(&in, h);
	s->list_start[0] = (uint32_t)(in.p - data) > HDR_BYTES ? (uint32_t)(in.p - data) : HDR_BYTES;
	if (size >= HDR_BYTES) {
		uint8_t win = data[5];
		describe_regions(data, size, s, data[6] % (MAX_HOST + 1), WIN_BASE[(win >> 2) & 7]);
	}
	uint64_t last_va = 0;
	struct op op;
	for (unsigned n = 0; in.left && n < MAX_OPS && s->nitem < FUZZ_MAX_ITEMS; n++) {
		struct fuzz_in a = in;
		dec_op(&in, h, &last_va, &op);
		struct fuzz_item *it = &s->item[s->nitem++];
		uint32_t off = (uint32_t)(a.p - data), len = (uint32_t)(in.p - a.p);
		*it = (struct fuzz_item){ .off = off, .len = len, .list = 0 };
		if (op.kind == OP_FAULT_IN || op.kind == OP_FAULT_VA || op.kind == OP_FAULT_NEAR) {
			it->f[0] = (struct fuzz_field){ .off = off, .len = len, .cls = FUZZ_F_VALUE, .enc = ENC_FAULT,
							.value = op.va };
			it->nfield = 1;
		}
	}
	free(h);
}

size_t fuzz_field_encode(const struct fuzz_field *f, const uint8_t *old, uint64_t value, uint8_t out[16])
{
	switch (f->enc) {
	case ENC_REGION_VA:  /* placement 3: raw VA, the rest of sel kept */
		out[0] = (uint8_t)((old[0] & ~0x0cu) | 0x0cu);
		for (int i = 0; i < 8; i++)
			out[1 + i] = (uint8_t)(value >> (8 * i));
		return 9;
	case ENC_FAULT:      /* the whole operation: a fault at a raw VA */
		out[0] = OP_FAULT_VA;
		for (int i = 0; i < 8; i++)
			out[1 + i] = (uint8_t)(value >> (8 * i));
		return 9;
	default:
		return 0;
	}
}
