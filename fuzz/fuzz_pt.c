/* fuzz_pt: the page-table engine alone, against the shadow MMU and against
 * oracles of its own.
 *
 * Reads: a two-byte header (flags, pool size) and then operations, one op
 * byte (op = u8 % OP_COUNT) and its operands each, until the input runs out
 * (byte format in fuzz/README.md). Operands are drawn from boundary tables
 * (page, 2 MiB, 1 GiB, 512 GiB, the canonical edges) and from the previous
 * operation, so that mutations keep hitting splits, collapses and bad input.
 *
 * Checks after every operation:
 *  - the return code equals this file's own argument rules, the shadow's and,
 *    for -ENOMEM, that the pool could really not hold what the operation may
 *    need (and then that nothing changed);
 *  - pool accounting: used == the number of tables the canonical form of the
 *    shadow needs (computed here from the shadow, independently of the
 *    engine), in-use bitmap population == used, cost functions consistent;
 *  - a CPU-style walk of the real tables (written here, not the checker's)
 *    around the touched range equals the shadow, leaf sizes included, and so
 *    does core's check_range;
 *  - pt_lookup and pt_is_empty at probes near the touched range equal the
 *    shadow's prediction (leaf base, size, PA and options).
 * At the end: the same walk over the whole address space with a structural
 * check (every table referenced once, in use, non-empty, its pool count
 * right), check_tables, check_rebuild, and pt_destroy giving every page back.
 * (check_range after every op also checks the count of each table it walks.)
 *
 * Live tables (header flag bit 7): the pool retires freed table pages
 * (pool_defer) and three simulated vCPUs walk addresses and pass flush
 * points between the operations (core/tlb.c). The harness plays the
 * runtime: an unmap, or a map over a range that had translations, is
 * followed by a shootdown (every vCPU flushes, then reclaim). After every
 * operation no vCPU may reach a freed or reused table page nor use a
 * translation the tables no longer allow; accounting counts live tables
 * (used minus retired).
 *
 * Debugging: build/replay/fuzz_pt --trace FILE prints the text trace an input
 * decodes to; build/kvmpt-trace runs that trace with full checking. On a
 * failure this target prints the trace up to the failing operation and the
 * broken invariant to stderr, then aborts. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fuzz_common.h"
#include "fuzzer.h"
#include "pool.h"
#include "pt.h"
#include "shadow.h"
#include "tlb.h"

#define PAGE        0x1000ull
#define SZ_2M       0x200000ull
#define SZ_1G       0x40000000ull
#define SZ_512G     0x8000000000ull
#define LOWER_END   0x0000800000000000ull
#define UPPER_START 0xffff800000000000ull
#define LIN_MASK    0x0000ffffffffffffull
#define LIN_END     0x0001000000000000ull
#define PA_LIMIT    (1ull << 52)
#define MAX_OPS     256
#define DEFAULT_POOL 128
#define BIG_POOL    4096
#define THOROUGH_TABLES 8 /* check_rebuild, pt_count_tables, pt_destroy up to this many tables */
#define LIVE_VCPUS  3
/* Work cap: leaves one map may write (the canonical form's leaves of its
 * range, counted before it runs) and all maps of an input together: about
 * 1 ms here with every check. A map over OP_CAP, or past WORK_CAP, is cut
 * to the pages that fit; past WORK_CAP each map still gets OP_FLOOR leaves
 * (the rest of the input keeps running: a 512 GiB map of 1 GiB leaves
 * after a few big 4 KiB ones, say). At most WORK_CAP + MAX_OPS * OP_FLOOR. */
#define OP_CAP      1024
#define OP_FLOOR    16
#define WORK_CAP    8192
#define CUT_SKIP    (~0ull)
/* Per-input budgets of the oracles that are not exact per operation: core's
 * check_range (it scans every table it visits, 512 entries each, for the
 * count oracle) on the first CORE_RANGE_OPS map/unmap operations, our
 * structure scan on `check` operations while CHECK_TABLES tables last. The
 * end of the input runs everything. */
#define CORE_RANGE_OPS 16
#define CHECK_TABLES   16

/* ---- decoding: pure functions of the bytes and the decoder state ---- */

enum {
	OP_MAP,
	OP_UNMAP,
	OP_LOOKUP,
	OP_EMPTY,
	OP_MAP_NEXT,   /* map right after the previous range, PA continued */
	OP_MAP_FILL,   /* map the whole 2M/1G/512G unit around the previous va, PA continued */
	OP_UNMAP_FILL, /* unmap the whole 4K/2M/1G/512G unit around the previous va */
	OP_REMAP,      /* map the previous range again with new PA and options */
	OP_CHECK,
	OP_COUNT,
	/* live tables only (header flag bit 7): op = u8 % OP_COUNT_LIVE */
	OP_VCPU_WALK = OP_COUNT,
	OP_VCPU_FLUSH,
	OP_COUNT_LIVE
};

struct op {
	int kind;
	uint64_t va, len, pa;
	uint32_t opts;
	unsigned vcpu;  /* vcpu walk / flush */
};

/* What operands may refer to: the previous operation. */
struct dstate {
	uint64_t va, len;
	uint64_t delta; /* pa - va of the last map */
	uint32_t opts;  /* of the last map */
	bool live;      /* header flag: the vCPU ops exist */
};

struct header {
	bool huge_1g;
	bool live;
	uint32_t cap;
	uint64_t pa_base;
};

static const uint64_t BASES[16] = {
	0x0000000000000000ull, 0x0000000000200000ull, 0x0000000040000000ull, 0x0000008000000000ull,
	0x0000800000000000ull, 0xffff800000000000ull, 0x0000000100000000ull, 0x00007f0000000000ull,
	0x0000555555554000ull, 0xffffffff80000000ull, 0x0000100000000000ull, 0x0000400000000000ull,
	0xffff888000000000ull, 0x00007ffffffff000ull, 0x000000003fe00000ull, 0x0000007fc0000000ull,
};
static const uint64_t UNITS[4] = { PAGE, SZ_2M, SZ_1G, SZ_512G };
static const uint64_t POOL_PA[4] = { 0x200000000ull, 0x1000ull, 0xfffff00000000ull, 0x7ffff000ull };

static uint64_t sx8(uint8_t b)
{
	return (uint64_t)(int64_t)(int8_t)b;
}

static void dec_header(struct fuzz_in *in, struct header *h)
{
	uint8_t flags = fuzz_u8(in), pool = fuzz_u8(in);
	h->huge_1g = !(flags & 1);
	h->pa_base = POOL_PA[(flags >> 1) & 3];
	h->live = flags & 0x80; /* bit 7: no older input has it (crashes/fuzz_pt has bit 3 set) */
	/* 0x00-0x7f: the default; 0x80-0xef: 1..112 pages (ENOMEM); 0xf0-: big. */
	h->cap = pool < 0x80 ? DEFAULT_POOL : pool < 0xf0 ? (uint32_t)pool - 0x7f : BIG_POOL;
}

/* sel: mode(7:6) unit(5:4) base(3:0); 0 absolute, 1 from the previous va,
 * 2 from the previous end, 3 raw u64. Then mult (i8) units, pages (i8). */
static uint64_t dec_addr(struct fuzz_in *in, const struct dstate *ds)
{
	uint8_t s = fuzz_u8(in);
	unsigned mode = s >> 6;
	if (mode == 3)
		return fuzz_u64(in);
	uint64_t unit = UNITS[(s >> 4) & 3];
	uint64_t base = mode == 0 ? BASES[s & 15] : mode == 1 ? ds->va : ds->va + ds->len;
	uint64_t m = sx8(fuzz_u8(in)), g = sx8(fuzz_u8(in));
	return base + m * unit + g * PAGE;
}

/* sel: mode(3:2) unit(1:0); 0 count*unit+pages, 1 up to a unit boundary
 * count units on, 2 raw u64, 3 previous length + count*unit + pages. */
static uint64_t dec_len(struct fuzz_in *in, const struct dstate *ds, uint64_t va)
{
	uint8_t s = fuzz_u8(in);
	unsigned mode = (s >> 2) & 3;
	if (mode == 2)
		return fuzz_u64(in);
	uint64_t unit = UNITS[s & 3];
	uint64_t c = fuzz_u8(in), g = sx8(fuzz_u8(in));
	switch (mode) {
	case 0:
		return c * unit + g * PAGE;
	case 1:
		return ((va + unit - 1) & ~(unit - 1)) + c * unit - va + g * PAGE;
	default:
		return ds->len + c * unit + g * PAGE;
	}
}

/* sel: unit(3:2) mode(1:0); 0 continues the last map (va + delta), 1 u16
 * units, 2 raw u64, 3 identity (the linear va). Then pages (i8). */
static uint64_t dec_pa(struct fuzz_in *in, const struct dstate *ds, uint64_t va)
{
	uint8_t s = fuzz_u8(in);
	unsigned mode = s & 3;
	if (mode == 2)
		return fuzz_u64(in);
	uint64_t unit = UNITS[(s >> 2) & 3];
	uint64_t c = mode == 1 ? fuzz_u16(in) : 0;
	uint64_t g = sx8(fuzz_u8(in)) * PAGE;
	switch (mode) {
	case 0:
		return va + ds->delta + g;
	case 1:
		return c * unit + g;
	default:
		return (va & LIN_MASK) + g;
	}
}

static const uint32_t ACCESS[8] = { PT_R,        PT_R | PT_W, PT_R | PT_X, PT_R | PT_W,
				    PT_R,        PT_R | PT_X, PT_R | PT_W, PT_R | PT_W | PT_X };
static const uint32_t MEMTYPE[4] = { 0, PT_WC, PT_UC, 0 };

/* bit 7 set: raw option bits (bits 6:0, 0 meaning an unknown bit);
 * else access(2:0) user(3) global(4) memtype(6:5). */
static uint32_t dec_opts(uint8_t b)
{
	if (b & 0x80)
		return (b & 0x7f) ? (b & 0x7fu) : 0x80u;
	return ACCESS[b & 7] | ((b & 8) ? PT_USER : 0) | ((b & 16) ? PT_GLOBAL : 0) | MEMTYPE[(b >> 5) & 3];
}

static void dec_op(struct fuzz_in *in, struct dstate *ds, struct op *op)
{
	uint8_t b;
	memset(op, 0, sizeof(*op));
	op->kind = fuzz_u8(in) % (ds->live ? OP_COUNT_LIVE : OP_COUNT);
	switch (op->kind) {
	case OP_VCPU_WALK: /* near the previous operation; leaves it the previous one */
		op->vcpu = fuzz_u8(in) % LIVE_VCPUS;
		op->va = dec_addr(in, ds);
		return;
	case OP_VCPU_FLUSH:
		op->vcpu = fuzz_u8(in) % LIVE_VCPUS;
		return;
	case OP_MAP:
		op->va = dec_addr(in, ds);
		op->len = dec_len(in, ds, op->va);
		op->pa = dec_pa(in, ds, op->va);
		op->opts = dec_opts(fuzz_u8(in));
		break;
	case OP_UNMAP:
	case OP_EMPTY:
		op->va = dec_addr(in, ds);
		op->len = dec_len(in, ds, op->va);
		break;
	case OP_LOOKUP:
		op->va = dec_addr(in, ds);
		op->len = PAGE;
		break;
	case OP_MAP_NEXT:
		op->va = ds->va + ds->len;
		op->len = dec_len(in, ds, op->va);
		op->pa = op->va + ds->delta;
		b = fuzz_u8(in);
		op->opts = b ? dec_opts(b) : ds->opts;
		break;
	case OP_MAP_FILL: {
		uint64_t unit = UNITS[1 + fuzz_u8(in) % 3];
		op->va = ds->va & ~(unit - 1);
		op->len = unit;
		op->pa = op->va + ds->delta;
		b = fuzz_u8(in);
		op->opts = b ? dec_opts(b) : ds->opts;
		op->kind = OP_MAP_FILL;
		break;
	}
	case OP_UNMAP_FILL: {
		uint64_t unit = UNITS[fuzz_u8(in) % 4];
		op->va = ds->va & ~(unit - 1);
		op->len = unit;
		break;
	}
	case OP_REMAP:
		op->va = ds->va;
		op->len = ds->len;
		op->pa = dec_pa(in, ds, op->va);
		op->opts = dec_opts(fuzz_u8(in));
		break;
	default:
		return;
	}
	ds->va = op->va;
	ds->len = op->len;
	if (op->kind == OP_MAP || op->kind == OP_MAP_NEXT || op->kind == OP_MAP_FILL || op->kind == OP_REMAP) {
		ds->delta = op->pa - op->va;
		ds->opts = op->opts;
	}
}

static bool is_map(int kind)
{
	return kind == OP_MAP || kind == OP_MAP_NEXT || kind == OP_MAP_FILL || kind == OP_REMAP;
}

static bool is_unmap(int kind)
{
	return kind == OP_UNMAP || kind == OP_UNMAP_FILL;
}

/* ---- text trace ---- */

/* Options as in traces; "rwx" and "opts=0x.." are for bad input. */
static const char *fmt_opts(uint32_t o, char buf[48])
{
	if ((o & ~PT_OPTS_ALL) || !(o & PT_R)) {
		snprintf(buf, 48, "opts=0x%x", o);
		return buf;
	}
	strcpy(buf, (o & PT_W) && (o & PT_X) ? "rwx" : (o & PT_W) ? "rw" : (o & PT_X) ? "rx" : "r");
	if (o & PT_USER)
		strcat(buf, ",user");
	if (o & PT_GLOBAL)
		strcat(buf, ",global");
	if (o & PT_WC)
		strcat(buf, ",wc");
	if (o & PT_UC)
		strcat(buf, ",uc");
	return buf;
}

static void print_header(FILE *f, const struct header *h)
{
	fprintf(f, "# fuzz_pt input\npool %u%s\n", h->cap, h->huge_1g ? "" : " 1g=off");
	if (h->live)
		fprintf(f, "vcpus %d\n", LIVE_VCPUS);
}

static void print_op(FILE *f, const struct op *op)
{
	char o[48];
	unsigned long long va = op->va, len = op->len, pa = op->pa;
	if (is_map(op->kind))
		fprintf(f, "map 0x%llx 0x%llx 0x%llx %s\n", va, len, pa, fmt_opts(op->opts, o));
	else if (is_unmap(op->kind))
		fprintf(f, "unmap 0x%llx 0x%llx\n", va, len);
	else if (op->kind == OP_LOOKUP)
		fprintf(f, "lookup 0x%llx\n", va);
	else if (op->kind == OP_EMPTY)
		fprintf(f, "empty 0x%llx 0x%llx\n", va, len);
	else if (op->kind == OP_VCPU_WALK)
		fprintf(f, "vcpu %u walk 0x%llx\n", op->vcpu, va);
	else if (op->kind == OP_VCPU_FLUSH)
		fprintf(f, "vcpu %u flush\n", op->vcpu);
	else
		fprintf(f, "check\n");
}

/* ---- per-input state and failure reporting ---- */

struct fz {
	const uint8_t *data;
	size_t size;
	unsigned nop;        /* operations run so far, the failing one included */
	struct header h;
	struct pt pt;
	uint64_t work;       /* leaves the maps so far wrote (work cap) */
	unsigned core_ranges; /* check_range calls so far */
	uint64_t checked;    /* tables check_structure scanned on `check` ops */
	uint64_t cut[MAX_OPS]; /* per op: 0 as decoded, CUT_SKIP, or the length run */
	/* Memory reused by every input (reset to empty by each): */
	struct pool pool;    /* BIG_POOL pages of room, pre-faulted; pool_reset per input */
	struct pool scratch; /* check_rebuild_in's tables */
	struct shadow sh;
	uint64_t *mark;      /* our own table-reference bitmap */
	struct tlb tlb;      /* live tables */
	char buf[512];
};

/* An operation as it ran (the work cap's cuts said). */
static void print_cut_op(FILE *out, const struct op *op, uint64_t cut)
{
	struct op o = *op;
	if (cut == CUT_SKIP) {
		fprintf(out, "# work cap (%d leaves an input): skipped: ", WORK_CAP);
		print_op(out, op);
		return;
	}
	if (cut) {
		fprintf(out, "# work cap (%d leaves a map, %d an input): cut to 0x%llx bytes\n", OP_CAP, WORK_CAP,
			(unsigned long long)cut);
		o.len = cut;
	}
	print_op(out, &o);
}

static void fz_fail(struct fz *f, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fz_fail(struct fz *f, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Decode again, printing, up to the failing operation. */
	struct fuzz_in in = { f->data, f->size };
	struct dstate ds = { 0 };
	struct header h;
	struct op op;
	fprintf(stderr, "---- fuzz_pt trace up to the failure ----\n");
	dec_header(&in, &h);
	ds.live = h.live;
	print_header(stderr, &h);
	for (unsigned i = 0; i < f->nop && in.left; i++) {
		dec_op(&in, &ds, &op);
		print_cut_op(stderr, &op, f->cut[i]);
	}
	if (!f->nop)
		fprintf(stderr, "check\n");
	fprintf(stderr, "---- end of trace ----\nfuzz_pt: FAIL after operation %u: %s\n", f->nop, msg);
	fflush(stderr);
	abort();
}

/* The oracle below: no coverage feedback, no ASan in the libFuzzer build
 * (fuzzer.h says why). */
FUZZ_ORACLE_BEGIN

/* ---- independent argument rules (DESIGN.md core contract) ---- */

static int want_range(uint64_t va, uint64_t len)
{
	if ((va | len) & (PAGE - 1) || len == 0)
		return -EINVAL;
	uint64_t last = va + len - 1;
	if (last < va)
		return -EINVAL;
	if (last < LOWER_END || va >= UPPER_START)
		return 0;
	return -EINVAL;
}

static int want_opts(uint32_t o)
{
	if (o & ~PT_OPTS_ALL || !(o & PT_R) || ((o & PT_W) && (o & PT_X)) || ((o & PT_WC) && (o & PT_UC)))
		return -EINVAL;
	return 0;
}

static int want_map(uint64_t va, uint64_t len, uint64_t pa, uint32_t o)
{
	if (want_range(va, len) || want_opts(o) || (pa & (PAGE - 1)) || pa >= PA_LIMIT || len > PA_LIMIT - pa)
		return -EINVAL;
	return 0;
}

static bool canonical(uint64_t va)
{
	return va < LOWER_END || va >= UPPER_START;
}

static uint64_t lin(uint64_t va)
{
	return va & LIN_MASK;
}

static uint64_t canon(uint64_t l)
{
	return l >= LOWER_END ? l | ~LIN_MASK : l;
}

/* ---- shadow queries in linear addresses ---- */

static uint64_t r_lo(const struct shadow_range *r)
{
	return lin(r->va);
}

/* First range that ends after linear x (x below 2^48), or NULL. */
static const struct shadow_range *sh_lower(const struct shadow *sh, uint64_t x)
{
	return shadow_lower(sh, canon(x));
}

static bool contig(const struct shadow_range *a, const struct shadow_range *b)
{
	return r_lo(a) + a->len == r_lo(b) && a->pa + a->len == b->pa && a->opts == b->opts;
}

/* The leaf the canonical form has at linear x: false when unmapped. */
struct leafp {
	uint64_t base, size, pa;  /* linear base, size, pa of base */
	uint32_t opts;
};

static bool predict_leaf(const struct fz *f, uint64_t x, struct leafp *lp)
{
	const struct shadow *sh = &f->sh;
	const struct shadow_range *i = sh_lower(sh, x), *a, *b, *n;
	if (!i || r_lo(i) > x)
		return false;
	for (a = i; (n = shadow_prev(sh, a)) && contig(n, a);)
		a = n;
	for (b = i; (n = shadow_next(sh, b)) && contig(b, n);)
		b = n;
	uint64_t rv = r_lo(a), re = r_lo(b) + b->len;
	uint64_t delta = i->pa - r_lo(i);
	lp->opts = i->opts;
	lp->size = PAGE;
	for (uint64_t s = f->h.huge_1g ? SZ_1G : SZ_2M; s >= SZ_2M; s >>= 9) {
		uint64_t base = x & ~(s - 1);
		if (base >= rv && base + s <= re && !((base + delta) & (s - 1))) {
			lp->size = s;
			break;
		}
	}
	lp->base = x & ~(lp->size - 1);
	lp->pa = lp->base + delta;
	return true;
}

static bool sh_empty(const struct shadow *sh, uint64_t lo, uint64_t hi)
{
	const struct shadow_range *i = sh_lower(sh, lo);
	return !i || r_lo(i) >= hi;
}

/* Table pages the canonical form of the shadow needs, root included. */
static uint64_t canonical_tables(const struct fz *f)
{
	const struct shadow *sh = &f->sh;
	uint64_t total = 1;
	for (int lv = 1; lv <= 3; lv++) {
		uint64_t s = 1ull << (12 + 9 * lv);
		bool leaf_ok = lv <= (f->h.huge_1g ? 2 : 1);
		uint64_t next_free = 0;
		for (const struct shadow_range *i = shadow_first(sh), *j; i; i = j) {
			uint64_t v = r_lo(i), e = v + i->len;
			uint64_t d = i->pa - v;
			const struct shadow_range *p = i;
			for (j = shadow_next(sh, i); j && contig(p, j); j = shadow_next(sh, j)) {
				e += j->len;
				p = j;
			}
			uint64_t first = v / s, last = (e - 1) / s;
			if (first < next_free)
				first = next_free;
			if (last >= first)
				total += last - first + 1;
			if (last + 1 > next_free)
				next_free = last + 1;
			if (leaf_ok && !(d & (s - 1))) {
				uint64_t fa = (v + s - 1) / s, fb = e / s;
				if (fb > fa)
					total -= fb - fa;
			}
		}
	}
	return total;
}

/* Most table pages an operation on linear [v, e) may take at any moment in
 * any sane implementation: every entry it covers in part, and every entry it
 * covers whole that cannot be one leaf. */
static uint64_t op_need(const struct fz *f, uint64_t v, uint64_t e, bool map, uint64_t delta)
{
	uint64_t need = 0;
	for (int lv = 1; lv <= 3; lv++) {
		uint64_t s = 1ull << (12 + 9 * lv);
		uint64_t first = v / s, last = (e - 1) / s;
		uint64_t whole_a = (v + s - 1) / s, whole_b = e / s;
		uint64_t whole = whole_b > whole_a ? whole_b - whole_a : 0;
		uint64_t n = last - first + 1;
		bool leaf_ok = !map || (lv <= (f->h.huge_1g ? 2 : 1) && !(delta & (s - 1)));
		need += leaf_ok ? n - whole : n;
	}
	return need;
}

/* ---- our own CPU-style walk ---- */

static uint64_t *table_at(struct fz *f, uint64_t pa, int lv, uint64_t x)
{
	struct pool *p = &f->pool;
	if (pa < p->pa_base || (pa - p->pa_base) / PAGE >= p->capacity)
		fz_fail(f, "structure: level %d entry for va 0x%llx points to pa 0x%llx outside the pool", lv,
			(unsigned long long)canon(x), (unsigned long long)pa);
	uint64_t i = (pa - p->pa_base) / PAGE;
	if (!(p->in_use[i / 64] & (1ull << (i % 64))))
		fz_fail(f, "structure: level %d entry for va 0x%llx points to free pool page %llu", lv,
			(unsigned long long)canon(x), (unsigned long long)i);
	return (uint64_t *)(p->base + i * PAGE);
}

/* The shadow must map linear [lo, hi) to pa.. with opts. */
static void expect_span(struct fz *f, uint64_t lo, uint64_t hi, uint64_t pa, uint32_t opts, uint64_t size)
{
	char o1[48], o2[48];
	const struct shadow_range *r = sh_lower(&f->sh, lo);
	for (uint64_t c = lo; c < hi; r = shadow_next(&f->sh, r)) {
		if (!r || r_lo(r) > c)
			fz_fail(f, "translation: va 0x%llx maps to pa 0x%llx %s (leaf 0x%llx), shadow has nothing",
				(unsigned long long)canon(c), (unsigned long long)(pa + (c - lo)), fmt_opts(opts, o1),
				(unsigned long long)size);
		uint64_t spa = r->pa + (c - r_lo(r));
		if (spa != pa + (c - lo) || r->opts != opts)
			fz_fail(f, "translation: va 0x%llx maps to pa 0x%llx %s (leaf 0x%llx), shadow says pa 0x%llx %s",
				(unsigned long long)canon(c), (unsigned long long)(pa + (c - lo)), fmt_opts(opts, o1),
				(unsigned long long)size, (unsigned long long)spa, fmt_opts(r->opts, o2));
		c = r_lo(r) + r->len;
	}
}

static void expect_hole(struct fz *f, uint64_t lo, uint64_t hi)
{
	const struct shadow_range *r = sh_lower(&f->sh, lo);
	if (r && r_lo(r) < hi) {
		uint64_t c = r_lo(r) > lo ? r_lo(r) : lo;
		fz_fail(f, "translation: va 0x%llx is unmapped, shadow says pa 0x%llx", (unsigned long long)canon(c),
			(unsigned long long)(r->pa + (c - r_lo(r))));
	}
}

#define RSV_HIGH 0x7ff0000000000000ull /* bits 52..62 */
#define ADDR_MASK 0x000ffffffffff000ull

/* Walks linear [lo, hi) entry by entry as the CPU would and compares every
 * leaf and hole with the shadow, leaf sizes with the canonical form. */
static void walk_compare(struct fz *f, uint64_t lo, uint64_t hi)
{
	char o1[48];
	for (uint64_t x = lo; x < hi;) {
		const uint64_t *t = f->pt.root;
		bool w = true, u = true, ex = true;
		for (int lv = 3;; lv--) {
			unsigned shift = 12 + 9 * (unsigned)lv;
			uint64_t s = 1ull << shift;
			uint64_t e = t[(x >> shift) & 511];
			uint64_t base = x & ~(s - 1);
			uint64_t stop = base + s < hi ? base + s : hi;
			if (!(e & 1)) {
				/* The holes that follow in this table: one shadow
				 * comparison (a non-present entry is 0: check_count). */
				uint64_t table_end = (x | ((s << 9) - 1)) + 1;
				unsigned idx = (unsigned)(x >> shift) & 511;
				while (stop < hi && stop < table_end && !(t[++idx] & 1))
					stop = stop + s < hi ? stop + s : hi;
				expect_hole(f, x, stop);
				x = stop;
				break;
			}
			if (e & RSV_HIGH)
				fz_fail(f, "structure: reserved bits in level %d entry 0x%llx for va 0x%llx", lv,
					(unsigned long long)e, (unsigned long long)canon(x));
			w = w && (e & 2);
			u = u && (e & 4);
			ex = ex && !(e >> 63);
			if (lv > 0 && !(e & 0x80)) {
				t = table_at(f, e & ADDR_MASK, lv, x);
				continue;
			}
			/* A leaf. */
			if (lv == 3 || (lv == 2 && !f->h.huge_1g))
				fz_fail(f, "structure: leaf at level %d (va 0x%llx) not allowed", lv,
					(unsigned long long)canon(x));
			uint64_t pat = lv ? (1ull << 12) : (1ull << 7);
			if (e & pat)
				fz_fail(f, "structure: PAT bit in leaf 0x%llx (va 0x%llx)", (unsigned long long)e,
					(unsigned long long)canon(x));
			if (lv && (e & (s - 1) & ~0x1fffull))
				fz_fail(f, "structure: huge leaf 0x%llx (va 0x%llx) has low address bits set",
					(unsigned long long)e, (unsigned long long)canon(x));
			uint32_t opts = PT_R | (w ? PT_W : 0) | (ex ? PT_X : 0) | (u ? PT_USER : 0) |
					((e & 0x100) ? PT_GLOBAL : 0);
			switch (e & 0x18) {
			case 0x00:
				break;
			case 0x08:
				opts |= PT_WC;
				break;
			case 0x18:
				opts |= PT_UC;
				break;
			default:
				fz_fail(f, "structure: leaf 0x%llx (va 0x%llx) uses PAT index 2", (unsigned long long)e,
					(unsigned long long)canon(x));
			}
			if (w && ex)
				fz_fail(f, "structure: W+X leaf 0x%llx at va 0x%llx", (unsigned long long)e,
					(unsigned long long)canon(x));
			uint64_t pa = (e & ADDR_MASK & ~(s - 1)) + (x - base);
			/* A run of 4 KiB leaves that continue this one (same bits,
			 * next frame) is one span: one shadow comparison, and the
			 * same canonical prediction (they share their 2 MiB entry). */
			if (lv == 0) {
				uint64_t table_end = (x | (SZ_2M - 1)) + 1;
				unsigned idx = (unsigned)(x >> 12) & 511;
				while (stop < hi && stop < table_end) {
					uint64_t n = t[++idx];
					if ((n & ~ADDR_MASK) != (e & ~ADDR_MASK) ||
					    (n & ADDR_MASK) != (e & ADDR_MASK) + (stop - base))
						break;
					stop += PAGE;
				}
			}
			expect_span(f, x, stop, pa, opts, s);
			struct leafp lp;
			if (!predict_leaf(f, x, &lp) || lp.size != s)
				fz_fail(f, "canonical: va 0x%llx sits in a 0x%llx leaf, the canonical form has 0x%llx",
					(unsigned long long)canon(x), (unsigned long long)s,
					(unsigned long long)lp.size);
			(void)o1;
			x = stop;
			break;
		}
	}
}

/* The pool's count of present entries (the engine frees and collapses by
 * it) must match the table. */
static void check_count(struct fz *f, const uint64_t *t, unsigned present, uint64_t index)
{
	if (*pool_count(&f->pool, t) != present)
		fz_fail(f, "structure: table page %llu holds %u present entries, its count says %u",
			(unsigned long long)index, present, *pool_count(&f->pool, t));
}

/* Whole-tree structure: each table referenced once, in use, not empty, its
 * count right; references + root == used == population of the in-use bitmap. */
static void check_structure(struct fz *f)
{
	struct pool *p = &f->pool;
	size_t words = ((size_t)p->capacity + 63) / 64;
	memset(f->mark, 0, words * sizeof(uint64_t));
	uint64_t refs = 0;
	uint64_t *stack_t[4];
	int stack_i[4];
	int lv = 3;
	stack_t[3] = f->pt.root;
	stack_i[3] = 0;
	uint64_t ri = ((uint8_t *)f->pt.root - p->base) / PAGE;
	f->mark[ri / 64] |= 1ull << (ri % 64);
	unsigned root_present = 0;
	for (int k = 0; k < 512; k++)
		root_present += f->pt.root[k] & 1;
	check_count(f, f->pt.root, root_present, ri);
	if (pt_root_pa(&f->pt) != p->pa_base + ri * PAGE)
		fz_fail(f, "structure: pt_root_pa 0x%llx, root page is at pa 0x%llx",
			(unsigned long long)pt_root_pa(&f->pt), (unsigned long long)(p->pa_base + ri * PAGE));
	while (lv <= 3) {
		if (stack_i[lv] == 512) {
			lv++;
			continue;
		}
		uint64_t e = stack_t[lv][stack_i[lv]++];
		if (!(e & 1) || lv == 0 || (e & 0x80))
			continue;
		uint64_t *child = table_at(f, e & ADDR_MASK, lv, 0);
		uint64_t ci = ((uint8_t *)child - p->base) / PAGE;
		if (f->mark[ci / 64] & (1ull << (ci % 64)))
			fz_fail(f, "structure: table page %llu referenced twice", (unsigned long long)ci);
		f->mark[ci / 64] |= 1ull << (ci % 64);
		refs++;
		unsigned present = 0;
		for (int k = 0; k < 512; k++)
			present += child[k] & 1;
		if (!present)
			fz_fail(f, "structure: empty table page %llu under a level %d entry", (unsigned long long)ci, lv);
		check_count(f, child, present, ci);
		if (lv == 1)
			continue; /* a page table holds only leaves: nothing below to visit */
		lv--;
		stack_t[lv] = child;
		stack_i[lv] = 0;
	}
	uint64_t pop = 0;
	for (size_t k = 0; k < words; k++)
		pop += (uint64_t)__builtin_popcountll(p->in_use[k]);
	if (refs + 1 + pool_retired(p) != p->used || pop != p->used)
		fz_fail(f, "accounting: pool used %u, tables referenced %llu + root + retired %u, in-use bits %llu",
			p->used, (unsigned long long)refs, pool_retired(p), (unsigned long long)pop);
}

static void check_counts(struct fz *f)
{
	struct pool *p = &f->pool;
	uint64_t want = canonical_tables(f);
	if (p->used - pool_retired(p) != want)
		fz_fail(f, "accounting: pool used %u (%u retired), the canonical form of the shadow needs %llu tables",
			p->used, pool_retired(p), (unsigned long long)want);
	if (p->used > p->capacity)
		fz_fail(f, "accounting: used %u above capacity %u", p->used, p->capacity);
	/* used against the in-use bitmap's population, its summaries, the hint */
	const char *bad = check_pool(p, f->buf, sizeof(f->buf));
	if (bad)
		fz_fail(f, "check_pool: %s", bad);
}

/* pt_lookup at linear x against the prediction. */
static void probe_lookup(struct fz *f, uint64_t x)
{
	if (x >= LIN_END)
		return;
	struct pt_leaf leaf;
	struct leafp lp;
	char o1[48], o2[48];
	uint64_t va = canon(x);
	int rc = pt_lookup(&f->pt, va, &leaf);
	bool want = predict_leaf(f, x & ~(PAGE - 1), &lp);
	if (!want) {
		if (rc != -ENOENT)
			fz_fail(f, "lookup: va 0x%llx returned %d, the shadow has nothing (want -ENOENT)",
				(unsigned long long)va, rc);
		return;
	}
	if (rc)
		fz_fail(f, "lookup: va 0x%llx returned %d, shadow says pa 0x%llx", (unsigned long long)va, rc,
			(unsigned long long)(lp.pa + (x - lp.base)));
	if (leaf.va != canon(lp.base) || leaf.size != lp.size || leaf.pa != lp.pa || leaf.opts != lp.opts ||
	    leaf.level != (lp.size == PAGE ? 0 : lp.size == SZ_2M ? 1 : 2))
		fz_fail(f,
			"lookup: va 0x%llx gave leaf va 0x%llx pa 0x%llx size 0x%llx level %d %s, want va 0x%llx pa "
			"0x%llx size 0x%llx %s",
			(unsigned long long)va, (unsigned long long)leaf.va, (unsigned long long)leaf.pa,
			(unsigned long long)leaf.size, leaf.level, fmt_opts(leaf.opts, o1),
			(unsigned long long)canon(lp.base), (unsigned long long)lp.pa, (unsigned long long)lp.size,
			fmt_opts(lp.opts, o2));
}

/* pt_is_empty on linear [lo, hi) (one half) against the shadow. */
static void probe_empty(struct fz *f, uint64_t lo, uint64_t hi)
{
	if (hi > LIN_END || lo >= hi || (lo < LOWER_END && hi > LOWER_END))
		return;
	bool empty = false;
	int rc = pt_is_empty(&f->pt, canon(lo), hi - lo, &empty);
	bool want = sh_empty(&f->sh, lo, hi);
	if (rc || empty != want || shadow_is_empty(&f->sh, canon(lo), hi - lo) != want)
		fz_fail(f, "empty: va 0x%llx len 0x%llx: pt %d/%s, shadow_is_empty %d, want %s",
			(unsigned long long)canon(lo), (unsigned long long)(hi - lo), rc, empty ? "yes" : "no",
			shadow_is_empty(&f->sh, canon(lo), hi - lo), want ? "yes" : "no");
}

static void check_core_range(struct fz *f, uint64_t lo, uint64_t hi)
{
	const char *bad = check_range(&f->pt, &f->sh, canon(lo), hi - lo, f->buf, sizeof(f->buf));
	if (bad)
		fz_fail(f, "check_range: %s", bad);
}

/* Everything around linear [lo, hi) that an operation there may have
 * touched: the walk over the whole range and the 2 MiB entries around both
 * ends (where splits and collapses happen; exact: the work cap keeps the
 * leaves in it few, and holes cost one entry each level), lookups at the
 * 4K, 2M and 1G boundaries around it, and is-empty probes. The end of the
 * input walks everything. */
static void check_around(struct fz *f, uint64_t lo, uint64_t hi)
{
	uint64_t a = lo & ~(SZ_1G - 1), b = (hi + SZ_1G - 1) & ~(SZ_1G - 1);
	uint64_t wa = (lo & ~(SZ_2M - 1)) - SZ_2M, wb = ((hi + SZ_2M - 1) & ~(SZ_2M - 1)) + SZ_2M;
	if (wa > lo)
		wa = 0;
	if (wb > LIN_END)
		wb = LIN_END;
	walk_compare(f, wa, wb);
	/* core's check_range visits every entry, holes too: the range and a
	 * page either side (our walk covers the 2 MiB entries around it). */
	if (f->core_ranges++ < CORE_RANGE_OPS)
		check_core_range(f, lo >= PAGE ? lo - PAGE : 0, hi + PAGE <= LIN_END ? hi + PAGE : LIN_END);
	uint64_t pts[] = { lo, lo - PAGE, hi - PAGE, hi, lo + SZ_2M, (lo & ~(SZ_2M - 1)) - PAGE,
			   (hi + SZ_2M - 1) & ~(SZ_2M - 1), a, b - PAGE, (lo & ~(SZ_2M - 1)) + SZ_2M - PAGE };
	for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++)
		probe_lookup(f, pts[i]);
	probe_empty(f, lo, hi);
	probe_empty(f, lo & ~(SZ_2M - 1), (lo & ~(SZ_2M - 1)) + SZ_2M);
	probe_empty(f, (hi - 1) & ~(SZ_2M - 1), ((hi - 1) & ~(SZ_2M - 1)) + SZ_2M);
	probe_empty(f, a, b);
	probe_empty(f, lo - PAGE, lo);
	probe_empty(f, hi, hi + PAGE);
}

static void check_full(struct fz *f, bool rebuild)
{
	check_counts(f);
	check_structure(f);
	walk_compare(f, 0, LIN_END);
	const char *bad = check_tables(&f->pt, &f->sh, 0, f->buf, sizeof(f->buf));
	if (bad)
		fz_fail(f, "check_tables: %s", bad);
	/* check_rebuild and pt_count_tables walk through instrumented engine
	 * code leaf by leaf; up to THOROUGH_TABLES tables (with the work cap,
	 * most trees), our own canonical count and per-leaf size prediction
	 * cover them on bigger ones. */
	uint32_t live = f->pool.used - pool_retired(&f->pool);
	if (rebuild && (live > 1 || f->sh.count) && live <= THOROUGH_TABLES) {
		bad = check_rebuild_in(&f->pt, &f->sh, &f->scratch, f->buf, sizeof(f->buf));
		if (bad)
			fz_fail(f, "check_rebuild: %s", bad);
	}
	if (live > 1 && live <= THOROUGH_TABLES) {
		uint64_t tables[PT_MAX_LEVELS];
		pt_count_tables(&f->pt, tables);
		uint64_t sum = 0;
		for (int i = 0; i < PT_MAX_LEVELS; i++)
			sum += tables[i];
		if (sum != live || tables[3] != 1)
			fz_fail(f, "accounting: pt_count_tables says %llu (root level %llu), live tables %u",
				(unsigned long long)sum, (unsigned long long)tables[3], live);
	}
}

/* ---- live tables ---- */

static void live_shootdown(struct fz *f)
{
	for (unsigned v = 0; v < LIVE_VCPUS; v++)
		tlb_flush_point(&f->tlb, v);
}

static void run_walk(struct fz *f, const struct op *op)
{
	struct tlb_tr tr;
	enum tlb_source src;
	struct pt_leaf leaf;
	int rc = tlb_walk(&f->tlb, op->vcpu, op->va, &tr, &src, f->buf, sizeof(f->buf));
	if (rc == -EFAULT)
		fz_fail(f, "vcpu %u walk 0x%llx: %s", op->vcpu, (unsigned long long)op->va, f->buf);
	if (rc == -EINVAL)
		return;
	int lr = pt_lookup(&f->pt, op->va, &leaf);
	uint64_t page = op->va & ~(PAGE - 1);
	uint64_t pa = lr ? 0 : leaf.pa + (page - leaf.va);
	if ((rc == 0) != (lr == 0) || (rc == 0 && (tr.pa != pa || tr.opts != leaf.opts)))
		fz_fail(f, "vcpu %u walk 0x%llx gives %d pa 0x%llx, pt_lookup %d pa 0x%llx", op->vcpu,
			(unsigned long long)op->va, rc, (unsigned long long)tr.pa, lr, (unsigned long long)pa);
}

/* ---- one operation ---- */

/* What the work cap does to a map: 0 runs it as decoded, else the length
 * it runs with (the most pages whose leaves fit; the search takes any count
 * that fits, the leaves of a prefix are not monotonic in its length).
 * Charges what runs. Unmaps and bad maps run as decoded. */
static uint64_t work_cap(struct fz *f, const struct op *op)
{
	if (!is_map(op->kind) || want_map(op->va, op->len, op->pa, op->opts))
		return 0;
	uint64_t left = f->work < WORK_CAP ? WORK_CAP - f->work : 0;
	if (left > OP_CAP)
		left = OP_CAP;
	if (left < OP_FLOOR)
		left = OP_FLOOR;
	uint64_t va = lin(op->va), d = op->pa - op->va;
	uint64_t n = fuzz_map_leaves(va, op->len, d, f->h.huge_1g);
	if (n <= left) {
		f->work += n;
		return 0;
	}
	uint64_t lo = 0, hi = op->len / PAGE; /* the most pages that fit */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;
		if (fuzz_map_leaves(va, mid * PAGE, d, f->h.huge_1g) <= left)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (!lo)
		return CUT_SKIP;
	f->work += fuzz_map_leaves(va, lo * PAGE, d, f->h.huge_1g);
	return lo * PAGE;
}

static void run_set(struct fz *f, const struct op *op)
{
	bool map = is_map(op->kind);
	int want = map ? want_map(op->va, op->len, op->pa, op->opts) : want_range(op->va, op->len);
	uint32_t used0 = f->pool.used, cost = 0;
	int rc_cost = map ? pt_map_cost(&f->pt, op->va, op->len, op->pa, op->opts, &cost)
			  : pt_unmap_cost(&f->pt, op->va, op->len, &cost);
	if (rc_cost != want)
		fz_fail(f, "%s_cost returned %d, want %d", map ? "map" : "unmap", rc_cost, want);
	bool was_empty = true;
	if (f->h.live && want == 0)
		pt_is_empty(&f->pt, op->va, op->len, &was_empty);
	int rc = map ? pt_map(&f->pt, op->va, op->len, op->pa, op->opts) : pt_unmap(&f->pt, op->va, op->len);
	if (rc == -ENOMEM) {
		if (want)
			fz_fail(f, "%s returned -ENOMEM, want %d", map ? "map" : "unmap", want);
		uint64_t lo = lin(op->va);
		uint64_t need = op_need(f, lo, lo + op->len, map, op->pa - op->va);
		if (used0 + need <= f->pool.capacity)
			fz_fail(f, "%s returned -ENOMEM with %u of %u pages used; it can need at most %llu more",
				map ? "map" : "unmap", used0, f->pool.capacity, (unsigned long long)need);
		if (cost <= f->pool.capacity - used0)
			fz_fail(f, "%s returned -ENOMEM, its cost %u fits in the %u free pages", map ? "map" : "unmap",
				cost, f->pool.capacity - used0);
		if (f->pool.used != used0)
			fz_fail(f, "%s returned -ENOMEM and changed pool used %u -> %u", map ? "map" : "unmap", used0,
				f->pool.used);
	} else {
		int rs = map ? shadow_map(&f->sh, op->va, op->len, op->pa, op->opts)
			     : shadow_unmap(&f->sh, op->va, op->len);
		if (rs == -ENOMEM)
			fz_fail(f, "shadow out of memory (%zu ranges)", f->sh.count);
		if (rc != want || rs != want)
			fz_fail(f, "%s returned %d, shadow %d, want %d", map ? "map" : "unmap", rc, rs, want);
		if (rc == 0 && cost > f->pool.capacity - used0)
			fz_fail(f, "%s succeeded although its cost %u exceeds the %u free pages", map ? "map" : "unmap",
				cost, f->pool.capacity - used0);
		if (rc == 0 && f->pool.used > used0 + cost)
			fz_fail(f, "%s took %u pages, its cost said %u", map ? "map" : "unmap", f->pool.used - used0,
				cost);
		if (rc && f->pool.used != used0)
			fz_fail(f, "%s failed with %d and changed pool used %u -> %u", map ? "map" : "unmap", rc,
				used0, f->pool.used);
		if (rc == 0 && cost) {
			uint64_t lo = lin(op->va);
			uint64_t need = op_need(f, lo, lo + op->len, map, op->pa - op->va);
			if (cost > need)
				fz_fail(f, "%s cost %u, yet it can need at most %llu pages", map ? "map" : "unmap", cost,
					(unsigned long long)need);
		}
	}
	check_counts(f);
	if (want == 0)
		check_around(f, lin(op->va), lin(op->va) + op->len);
	/* The runtime's rule: what may have lost a translation is shot down. */
	if (f->h.live && rc == 0 && (!map || !was_empty))
		live_shootdown(f);
}

static void run_lookup(struct fz *f, const struct op *op)
{
	if (!canonical(op->va)) {
		struct pt_leaf leaf;
		int rc = pt_lookup(&f->pt, op->va, &leaf);
		if (rc != -EINVAL)
			fz_fail(f, "lookup of non-canonical va 0x%llx returned %d, want -EINVAL",
				(unsigned long long)op->va, rc);
		return;
	}
	probe_lookup(f, lin(op->va));
	uint64_t x = lin(op->va) & ~(PAGE - 1);
	probe_lookup(f, x ^ SZ_2M);
	probe_lookup(f, x ^ SZ_1G);
}

static void run_empty(struct fz *f, const struct op *op)
{
	int want = want_range(op->va, op->len);
	bool empty = false;
	int rc = pt_is_empty(&f->pt, op->va, op->len, &empty);
	if (rc != want)
		fz_fail(f, "empty returned %d, want %d", rc, want);
	if (!want)
		probe_empty(f, lin(op->va), lin(op->va) + op->len);
}

FUZZ_ORACLE_END

/* ---- the hooks ---- */

static struct fz fz_state;

/* Once per process: the pool (BIG_POOL pages, faulted in now so that no
 * input pays first-touch faults), check_rebuild's scratch pool, the shadow
 * and our bitmap. Every input resets them (pool_reset costs what the last
 * input used). */
int fuzz_init(void)
{
	struct fz *f = &fz_state;
	if (pool_init_mmap(&f->pool, BIG_POOL, POOL_PA[0]) || pool_prefault(&f->pool) ||
	    pool_init_mmap(&f->scratch, REBUILD_SCRATCH_PAGES, POOL_PA[0]) || pool_prefault(&f->scratch) ||
	    shadow_init(&f->sh, 2 * MAX_OPS + 16)) {
		fprintf(stderr, "fuzz_pt: cannot set up the pools\n");
		return 1;
	}
	f->mark = calloc(BIG_POOL / 64, sizeof(uint64_t));
	return f->mark ? 0 : 1;
}

int fuzz_one(const uint8_t *data, size_t size, FILE *trace)
{
	struct fz *f = &fz_state;
	f->data = data;
	f->size = size;
	f->nop = 0;
	f->work = 0;
	f->core_ranges = 0;
	f->checked = 0;
	memset(&f->pt, 0, sizeof(f->pt));
	memset(f->cut, 0, sizeof(f->cut));
	struct fuzz_in in = { data, size };
	dec_header(&in, &f->h);
	if (trace)
		print_header(trace, &f->h);
	if (pool_reset(&f->pool, f->h.cap, f->h.pa_base))
		fz_fail(f, "pool_reset(%u, 0x%llx) failed", f->h.cap, (unsigned long long)f->h.pa_base);
	shadow_clear(&f->sh);
	int rc = pt_init(&f->pt, &f->pool, 4, f->h.huge_1g);
	if (rc)
		fz_fail(f, "pt_init returned %d", rc);
	if (f->h.live && (pool_defer(&f->pool) || tlb_init(&f->tlb, &f->pt, LIVE_VCPUS)))
		abort();
	check_counts(f);

	struct dstate ds = { .live = f->h.live };
	struct op op;
	while (in.left && f->nop < MAX_OPS) {
		dec_op(&in, &ds, &op);
		uint64_t cut = f->cut[f->nop] = work_cap(f, &op);
		f->nop++;
		if (trace)
			print_cut_op(trace, &op, cut);
		if (cut == CUT_SKIP)
			continue;
		if (cut)
			op.len = cut;
		switch (op.kind) {
		case OP_LOOKUP:
			run_lookup(f, &op);
			break;
		case OP_EMPTY:
			run_empty(f, &op);
			break;
		case OP_CHECK:
			/* Structure now, while the budget lasts; the whole walk and
			 * core's checkers run at the end. */
			check_counts(f);
			if (f->checked + f->pool.used <= CHECK_TABLES) {
				f->checked += f->pool.used;
				check_structure(f);
			}
			break;
		case OP_VCPU_WALK:
			run_walk(f, &op);
			break;
		case OP_VCPU_FLUSH:
			tlb_flush_point(&f->tlb, op.vcpu);
			break;
		default:
			run_set(f, &op);
			break;
		}
		if (f->h.live && tlb_check(&f->tlb, f->buf, sizeof(f->buf)))
			fz_fail(f, "%s", f->buf);
	}
	if (trace)
		fprintf(trace, "check\n");
	check_full(f, true);
	/* pt_destroy gives every page back (checked) on trees small enough to
	 * be cheap; the next input's pool_reset clears what is left. */
	if (f->pool.used - pool_retired(&f->pool) <= THOROUGH_TABLES) {
		pt_destroy(&f->pt);
		pool_reclaim(&f->pool, UINT64_MAX); /* live: nothing runs any more */
		if (f->pool.used)
			fz_fail(f, "accounting: pt_destroy left %u pages in use", f->pool.used);
	}
	return 0;
}

/* ---- the encoder: text trace -> bytes (make corpus) ---- */

static bool try_addr(const struct dstate *ds, uint64_t v, const uint8_t *b, size_t n)
{
	struct fuzz_in in = { b, n };
	return dec_addr(&in, ds) == v && in.left == 0;
}

static int enc_addr(struct fuzz_out *o, const struct dstate *ds, uint64_t v)
{
	uint8_t b[9];
	for (unsigned mode = 0; mode < 3; mode++)
		for (unsigned base = 0; base < (mode ? 1u : 16u); base++)
			for (int unit = 3; unit >= 0; unit--) {
				uint64_t from = mode == 0 ? BASES[base] : mode == 1 ? ds->va : ds->va + ds->len;
				int64_t r = (int64_t)(v - from);
				int64_t m = r / (int64_t)UNITS[unit];
				for (int64_t mm = m - 1; mm <= m + 1; mm++) {
					if (mm < -128 || mm > 127)
						continue;
					int64_t g = (r - mm * (int64_t)UNITS[unit]) / (int64_t)PAGE;
					if (g < -128 || g > 127)
						continue;
					b[0] = (uint8_t)(mode << 6 | (unsigned)unit << 4 | base);
					b[1] = (uint8_t)mm;
					b[2] = (uint8_t)g;
					if (try_addr(ds, v, b, 3))
						return fuzz_put(o, b, 3);
				}
			}
	return fuzz_put_u8(o, 0xc0) || fuzz_put_u64(o, v);
}

static int enc_len(struct fuzz_out *o, const struct dstate *ds, uint64_t va, uint64_t v)
{
	uint8_t b[3];
	for (unsigned mode = 0; mode < 4; mode++) {
		if (mode == 2)
			continue;
		for (int unit = 3; unit >= 0; unit--) {
			uint64_t u = UNITS[unit];
			uint64_t from = mode == 0 ? 0 : mode == 1 ? ((va + u - 1) & ~(u - 1)) - va : ds->len;
			uint64_t r = v - from;
			uint64_t c = r / u;
			for (uint64_t cc = c; cc <= c + 1 && cc < 256; cc++) {
				b[0] = (uint8_t)(mode << 2 | (unsigned)unit);
				b[1] = (uint8_t)cc;
				b[2] = (uint8_t)(int8_t)((int64_t)(r - cc * u) / (int64_t)PAGE);
				struct fuzz_in in = { b, 3 };
				if (dec_len(&in, ds, va) == v)
					return fuzz_put(o, b, 3);
			}
		}
	}
	return fuzz_put_u8(o, 0x08) || fuzz_put_u64(o, v);
}

static int enc_pa(struct fuzz_out *o, const struct dstate *ds, uint64_t va, uint64_t v)
{
	uint8_t b[4];
	int64_t g = (int64_t)(v - (va + ds->delta)) / (int64_t)PAGE;
	if (g >= -128 && g < 128 && va + ds->delta + (uint64_t)g * PAGE == v)
		return fuzz_put_u8(o, 0) || fuzz_put_u8(o, (uint8_t)g);
	g = (int64_t)(v - (va & LIN_MASK)) / (int64_t)PAGE;
	if (g >= -128 && g < 128 && (va & LIN_MASK) + (uint64_t)g * PAGE == v)
		return fuzz_put_u8(o, 3) || fuzz_put_u8(o, (uint8_t)g);
	for (int unit = 3; unit >= 0; unit--) {
		uint64_t c = v / UNITS[unit];
		for (uint64_t cc = c; cc <= c + 1 && cc < 65536; cc++) {
			b[0] = (uint8_t)(unit << 2 | 1);
			b[1] = (uint8_t)cc;
			b[2] = (uint8_t)(cc >> 8);
			b[3] = (uint8_t)(int8_t)((int64_t)(v - cc * UNITS[unit]) / (int64_t)PAGE);
			struct fuzz_in in = { b, 4 };
			if (dec_pa(&in, ds, va) == v)
				return fuzz_put(o, b, 4);
		}
	}
	return fuzz_put_u8(o, 2) || fuzz_put_u64(o, v);
}

static int enc_opts(struct fuzz_out *o, uint32_t v)
{
	for (unsigned b = 0; b < 256; b++)
		if (dec_opts((uint8_t)b) == v)
			return fuzz_put_u8(o, (uint8_t)b);
	return -1;
}

static int parse_opts(const char *s, uint32_t *opts)
{
	if (!strncmp(s, "opts=", 5)) {
		*opts = (uint32_t)strtoul(s + 5, NULL, 0);
		return 0;
	}
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%s", s);
	char *save = NULL, *tok = strtok_r(tmp, ",", &save);
	if (!tok)
		return -1;
	if (!strcmp(tok, "r"))
		*opts = PT_R;
	else if (!strcmp(tok, "rw"))
		*opts = PT_R | PT_W;
	else if (!strcmp(tok, "rx"))
		*opts = PT_R | PT_X;
	else if (!strcmp(tok, "rwx"))
		*opts = PT_R | PT_W | PT_X;
	else
		return -1;
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (!strcmp(tok, "user"))
			*opts |= PT_USER;
		else if (!strcmp(tok, "global"))
			*opts |= PT_GLOBAL;
		else if (!strcmp(tok, "wc"))
			*opts |= PT_WC;
		else if (!strcmp(tok, "uc"))
			*opts |= PT_UC;
		else
			return -1;
	}
	return 0;
}

int fuzz_encode(const char *text, struct fuzz_out *out, char *err, size_t errlen)
{
	struct dstate ds = { 0 };
	bool header = false;
	unsigned ops = 0, lineno = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char line[512];
		snprintf(line, sizeof(line), "%.*s", (int)(n < 511 ? n : 511), p);
		p += n + (nl ? 1 : 0);
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char *w[6] = { 0 };
		int nw = 0;
		char *save = NULL;
		for (char *tok = strtok_r(line, " \t\r", &save); tok && nw < 6; tok = strtok_r(NULL, " \t\r", &save))
			w[nw++] = tok;
		if (!nw || !strcmp(w[0], "stats"))
			continue;
		uint64_t a[3] = { 0 };
		for (int i = 1; i < nw && i < 4; i++)
			a[i - 1] = strtoull(w[i], NULL, 0);
		int bad = 0;
		if (!header) {
			header = true;
			uint8_t flags = 0, pool = 0;
			if (!strcmp(w[0], "pool")) {
				if (nw < 2 || a[0] == 0 || (a[0] > 112 && a[0] != DEFAULT_POOL && a[0] != BIG_POOL)) {
					snprintf(err, errlen, "line %u: pool must be 1..112, %u or %u", lineno,
						 DEFAULT_POOL, BIG_POOL);
					return -1;
				}
				pool = a[0] == DEFAULT_POOL ? 0 : a[0] == BIG_POOL ? 0xf0 : (uint8_t)(a[0] + 0x7f);
				if (nw > 2 && !strcmp(w[2], "1g=off"))
					flags |= 1;
				if (fuzz_put_u8(out, flags) || fuzz_put_u8(out, pool))
					goto full;
				continue;
			}
			if (fuzz_put_u8(out, flags) || fuzz_put_u8(out, pool))
				goto full;
		}
		struct op op = { 0 };
		if (!strcmp(w[0], "map") && nw == 5) {
			op.kind = OP_MAP;
			op.va = a[0], op.len = a[1], op.pa = a[2];
			if (parse_opts(w[4], &op.opts)) {
				snprintf(err, errlen, "line %u: bad options '%s'", lineno, w[4]);
				return -1;
			}
			bad = fuzz_put_u8(out, OP_MAP) || enc_addr(out, &ds, op.va) ||
			      enc_len(out, &ds, op.va, op.len) || enc_pa(out, &ds, op.va, op.pa) ||
			      enc_opts(out, op.opts);
		} else if (!strcmp(w[0], "unmap") && nw == 3) {
			op.kind = OP_UNMAP;
			op.va = a[0], op.len = a[1];
			bad = fuzz_put_u8(out, OP_UNMAP) || enc_addr(out, &ds, op.va) ||
			      enc_len(out, &ds, op.va, op.len);
		} else if (!strcmp(w[0], "empty") && nw == 3) {
			op.kind = OP_EMPTY;
			op.va = a[0], op.len = a[1];
			bad = fuzz_put_u8(out, OP_EMPTY) || enc_addr(out, &ds, op.va) ||
			      enc_len(out, &ds, op.va, op.len);
		} else if (!strcmp(w[0], "lookup") && nw == 2) {
			op.kind = OP_LOOKUP;
			op.va = a[0], op.len = PAGE;
			bad = fuzz_put_u8(out, OP_LOOKUP) || enc_addr(out, &ds, op.va);
		} else if (!strcmp(w[0], "check") && nw == 1) {
			op.kind = OP_CHECK;
			bad = fuzz_put_u8(out, OP_CHECK);
		} else if (!strcmp(w[0], "vcpus") && nw == 2) {
			out->p[0] |= 0x80; /* live tables (always LIVE_VCPUS vCPUs) */
			ds.live = true;
			continue;
		} else if (!strcmp(w[0], "vcpu") && nw == 3 && !strcmp(w[2], "flush")) {
			op.kind = OP_VCPU_FLUSH;
			bad = fuzz_put_u8(out, OP_VCPU_FLUSH) || fuzz_put_u8(out, (uint8_t)(a[0] % LIVE_VCPUS));
		} else if (!strcmp(w[0], "vcpu") && nw == 4 && !strcmp(w[2], "walk")) {
			op.kind = OP_VCPU_WALK;
			op.va = strtoull(w[3], NULL, 0);
			bad = fuzz_put_u8(out, OP_VCPU_WALK) || fuzz_put_u8(out, (uint8_t)(a[0] % LIVE_VCPUS)) ||
			      enc_addr(out, &ds, op.va);
		} else {
			snprintf(err, errlen, "line %u: fuzz_pt cannot encode '%s'", lineno, w[0]);
			return -1;
		}
		if (bad)
			goto full;
		if (++ops > MAX_OPS) {
			snprintf(err, errlen, "line %u: more than %d operations", lineno, MAX_OPS);
			return -1;
		}
		if (op.kind != OP_CHECK && op.kind != OP_VCPU_WALK && op.kind != OP_VCPU_FLUSH) {
			ds.va = op.va;
			ds.len = op.len;
		}
		if (op.kind == OP_MAP) {
			ds.delta = op.pa - op.va;
			ds.opts = op.opts;
		}
	}
	if (!header && (fuzz_put_u8(out, 0) || fuzz_put_u8(out, 0)))
		goto full;
	return 0;
full:
	snprintf(err, errlen, "line %u: output full", lineno);
	return -1;
}

/* ---- structure for the structure-aware mutator (fuzz/mutator.c) ---- */

enum { ENC_ADDR = 1, ENC_LEN, ENC_PA, ENC_OPTS };

/* The operand read between cursors a and b (nothing when the input had run
 * out: there is no byte to rewrite). */
static void add_field(struct fuzz_item *it, const uint8_t *data, const struct fuzz_in *a, const struct fuzz_in *b,
		      uint8_t cls, uint8_t enc, uint64_t value)
{
	if (it->nfield == FUZZ_MAX_FIELDS || b->p == a->p)
		return;
	it->f[it->nfield++] = (struct fuzz_field){ .off = (uint32_t)(a->p - data), .len = (uint32_t)(b->p - a->p),
						   .cls = cls, .enc = enc, .flipmask = cls == FUZZ_F_BITS ? 0x7f : 0,
						   .value = value };
}

/* The operands of the operation at in, as dec_op reads them. */
static void describe_op(struct fuzz_item *it, const uint8_t *data, struct fuzz_in in, struct dstate ds)
{
	struct fuzz_in a;
	uint64_t va, len, pa;
	uint8_t b;
	switch (fuzz_u8(&in) % OP_COUNT) {
	case OP_MAP:
	case OP_UNMAP:
	case OP_EMPTY:
	case OP_LOOKUP: {
		int kind = (int)(data[it->off] % OP_COUNT);
		a = in;
		va = dec_addr(&in, &ds);
		add_field(it, data, &a, &in, FUZZ_F_VALUE, ENC_ADDR, va);
		if (kind == OP_LOOKUP)
			break;
		a = in;
		len = dec_len(&in, &ds, va);
		add_field(it, data, &a, &in, FUZZ_F_VALUE, ENC_LEN, len);
		if (kind != OP_MAP)
			break;
		a = in;
		pa = dec_pa(&in, &ds, va);
		add_field(it, data, &a, &in, FUZZ_F_VALUE, ENC_PA, pa);
		a = in;
		b = fuzz_u8(&in);
		add_field(it, data, &a, &in, FUZZ_F_BITS, ENC_OPTS, dec_opts(b));
		break;
	}
	case OP_MAP_NEXT:
		va = ds.va + ds.len;
		a = in;
		len = dec_len(&in, &ds, va);
		add_field(it, data, &a, &in, FUZZ_F_VALUE, ENC_LEN, len);
		a = in;
		b = fuzz_u8(&in);
		add_field(it, data, &a, &in, FUZZ_F_BITS, ENC_OPTS, b ? dec_opts(b) : ds.opts);
		break;
	case OP_MAP_FILL:
		fuzz_u8(&in);
		a = in;
		b = fuzz_u8(&in);
		add_field(it, data, &a, &in, FUZZ_F_BITS, ENC_OPTS, b ? dec_opts(b) : ds.opts);
		break;
	case OP_REMAP:
		a = in;
		pa = dec_pa(&in, &ds, ds.va);
		add_field(it, data, &a, &in, FUZZ_F_VALUE, ENC_PA, pa);
		a = in;
		b = fuzz_u8(&in);
		add_field(it, data, &a, &in, FUZZ_F_BITS, ENC_OPTS, dec_opts(b));
		break;
	default:
		break;
	}
	/* Fields must lie inside the span dec_op read (a decoder change that
	 * this mirror missed drops them rather than corrupting inputs). */
	for (unsigned k = 0; k < it->nfield; k++)
		if (it->f[k].off + it->f[k].len > it->off + it->len) {
			it->nfield = 0;
			break;
		}
}

void fuzz_describe(const uint8_t *data, size_t size, struct fuzz_shape *s)
{
	struct fuzz_in in = { data, size };
	struct header h;
	struct dstate ds = { 0 };
	struct op op;
	s->nitem = 0;
	s->nhdr = 0;
	s->list_start[0] = s->list_start[1] = 2;
	s->count_off[0] = s->count_off[1] = -1;
	s->count_max[0] = MAX_OPS;
	s->count_max[1] = 0;
	if (size)  /* flags: 1 GiB leaves off, pool PA base, live tables */
		s->hdr[s->nhdr++] = (struct fuzz_field){ .off = 0, .len = 1, .cls = FUZZ_F_BITS, .flipmask = 0x87 };
	dec_header(&in, &h);
	for (unsigned n = 0; in.left && n < MAX_OPS && s->nitem < FUZZ_MAX_ITEMS; n++) {
		struct fuzz_in a = in;
		struct dstate dsa = ds;
		dec_op(&in, &ds, &op);
		struct fuzz_item *it = &s->item[s->nitem++];
		*it = (struct fuzz_item){ .off = (uint32_t)(a.p - data), .len = (uint32_t)(in.p - a.p), .list = 0 };
		describe_op(it, data, a, dsa);
	}
}

size_t fuzz_field_encode(const struct fuzz_field *f, const uint8_t *old, uint64_t value, uint8_t out[16])
{
	(void)old;
	uint8_t sel;
	switch (f->enc) {
	case ENC_ADDR:
		sel = 0xc0;  /* mode 3: raw u64 */
		break;
	case ENC_LEN:
		sel = 0x08;  /* mode 2 */
		break;
	case ENC_PA:
		sel = 0x02;  /* mode 2 */
		break;
	case ENC_OPTS:
		/* raw option bits: 0x80 | opts (opts 0 cannot be said) */
		if (!(value & 0x7f) || (value & ~0x7full))
			return 0;
		out[0] = (uint8_t)(0x80 | value);
		return 1;
	default:
		return 0;
	}
	out[0] = sel;
	for (int i = 0; i < 8; i++)
		out[1 + i] = (uint8_t)(value >> (8 * i));
	return 9;
}
