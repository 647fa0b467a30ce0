/* fuzz_maps: the /proc/self/maps parser (physmap_parse_maps) and the physical
 * map built from what it returns, against a small reader written here.
 *
 * Reads: the whole input as maps text, any bytes (no header): lines split at
 * '\n', the last one may lack it; lines may be overlong, hold NULs, tabs,
 * bad hex, names with spaces, " (deleted)", [vsyscall].
 *
 * Checks:
 *  - physmap_parse_maps with room for every line: the return code, the
 *    1-based bad line, the count and every region (va, len, kind) equal this
 *    file's own reader (ref_line); *n and *bad_line untouched when they must
 *    be; nothing written past the array (ASan: it is exactly that long);
 *  - the same with room for one region fewer than the text has good lines
 *    before its first bad one: -ENOSPC, or -EINVAL where the bad line comes
 *    first;
 *  - kind: a mapping the host cannot write (perms[1] != 'w': ---p guard
 *    pages, --xp / r-xp code, r--s) is never REGION_NORMAL, so never
 *    writable in the guest; [vsyscall] and everything from 2^47 - 4 KiB
 *    up is EXCLUDED;
 *  - physmap_build over the parsed regions (as kvmrt does): -EINVAL exactly
 *    when two of them overlap; otherwise every host region that is not
 *    excluded is covered, clipped to [4K, 2^47 - 4K), by physical regions of its
 *    own kind, no excluded one by any physical region (so no guest-writable
 *    physical region overlaps a host mapping without 'w'), and
 *    physmap_host_region finds each host region.
 *
 * Debugging: build/replay/fuzz_maps --trace FILE prints the regions as
 * `region` lines plus `layout` and `check` (a kvmpt-trace trace when the
 * regions do not overlap). A failure prints that much and the broken
 * property (with the line number), then aborts. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzer.h"
#include "physmap.h"

#define PAGE      0x1000ull
/* Where the guest's address space ends: Linux's TASK_SIZE, gVisor's
 * MaximumUserAddress (KVM refuses a slot that reaches the last page). */
#define VA_LIMIT  ((1ull << 47) - PAGE)
#define MAX_LINES 4096  /* inputs with more lines are cut (the work stays small) */

/* ---- the reference reader ---- */

/* One line of maps text as this file reads it: valid, or not. */
struct ref {
	uint64_t va, len;
	enum region_kind kind;
	bool host_w;  /* perms[1] == 'w' */
};

static int hexval(unsigned char c)
{
	static const char digits[] = "0123456789abcdefABCDEF";
	const char *p = c ? memchr(digits, c, sizeof(digits) - 1) : NULL;
	if (!p)
		return -1;
	int v = (int)(p - digits);
	return v < 16 ? v : v - 6;
}

/* s[0..n) is 1 to 16 hex digits and nothing else. */
static bool ref_hex(const char *s, size_t n, uint64_t *v)
{
	if (n < 1 || n > 16)
		return false;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		int d = hexval((unsigned char)s[i]);
		if (d < 0)
			return false;
		x = x * 16 + (uint64_t)d;
	}
	*v = x;
	return true;
}

/* Length of the field at s[0..n) that ends at the first byte in stop. */
static size_t field(const char *s, size_t n, const char *stop)
{
	size_t i = 0;
	while (i < n && !strchr(stop, s[i] ? s[i] : 'z'))
		i++;
	return i;
}

/* "START-END PERMS OFFSET DEV INODE[ blanks NAME]": the separators between
 * the first five fields are single spaces; DEV is anything without blanks,
 * INODE ends at a blank; the name is the rest after blanks. */
static bool ref_line(const char *s, size_t n, struct ref *r)
{
	size_t k = field(s, n, " ");          /* START-END */
	size_t dash = field(s, k, "-");
	uint64_t start, end, off;
	if (dash == k || !ref_hex(s, dash, &start) || !ref_hex(s + dash + 1, k - dash - 1, &end) || k == n)
		return false;
	s += k + 1, n -= k + 1;
	k = field(s, n, " ");                 /* perms */
	if (k != 4 || k == n)
		return false;
	if ((s[0] != 'r' && s[0] != '-') || (s[1] != 'w' && s[1] != '-') || (s[2] != 'x' && s[2] != '-') ||
	    (s[3] != 'p' && s[3] != 's'))
		return false;
	r->host_w = s[1] == 'w';
	s += 5, n -= 5;
	k = field(s, n, " ");                 /* offset */
	if (!ref_hex(s, k, &off) || k == n)
		return false;
	s += k + 1, n -= k + 1;
	k = field(s, n, " \t");               /* device */
	if (k == 0 || k == n || s[k] != ' ')
		return false;
	s += k + 1, n -= k + 1;
	k = field(s, n, " \t");               /* inode */
	if (k == 0)
		return false;
	s += k, n -= k;
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	if (end <= start || (start % PAGE) || (end % PAGE))
		return false;
	r->va = start;
	r->len = end - start;
	bool vsyscall = n == 10 && !memcmp(s, "[vsyscall]", 10);
	r->kind = vsyscall || start >= VA_LIMIT ? REGION_EXCLUDED : r->host_w ? REGION_NORMAL : REGION_RO;
	return true;
}

/* ---- state and failure reporting ---- */

struct fz {
	const char *text;
	size_t len;
	struct ref *ref;       /* the good lines before the first bad one */
	size_t *ref_line_no;   /* their line numbers */
	size_t nref;
	size_t bad_line;       /* first bad line, 0 when none */
	size_t lines;          /* lines read (blank ones included) */
	char why[256];
};

static const char *kind_word(enum region_kind k)
{
	return k == REGION_RO ? " ro" : k == REGION_MMIO ? " mmio" : k == REGION_EXCLUDED ? " excluded" : "";
}

static void print_trace(FILE *out, const struct fz *f)
{
	fprintf(out, "# fuzz_maps input: %zu bytes, %zu lines, %zu good%s\n", f->len, f->lines, f->nref,
		f->bad_line ? " before a bad line" : "");
	for (size_t i = 0; i < f->nref; i++)
		fprintf(out, "region 0x%llx 0x%llx%s    # line %zu\n", (unsigned long long)f->ref[i].va,
			(unsigned long long)f->ref[i].len, kind_word(f->ref[i].kind), f->ref_line_no[i]);
	if (f->bad_line)
		fprintf(out, "# line %zu is malformed\n", f->bad_line);
	fprintf(out, "layout\ncheck\n");
}

static void fz_fail(struct fz *f, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fz_fail(struct fz *f, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "---- fuzz_maps: what the input says (reference reader) ----\n");
	print_trace(stderr, f);
	fprintf(stderr, "---- end ----\nfuzz_maps: FAIL: %s\n", msg);
	fflush(stderr);
	abort();
}

FUZZ_ORACLE_BEGIN

/* Reads the text as the reference: good lines up to the first bad one. */
static void ref_read(struct fz *f)
{
	const char *p = f->text, *end = f->text + f->len;
	while (p < end && f->lines < MAX_LINES) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		f->lines++;
		if (n) {
			struct ref r;
			if (!ref_line(p, n, &r)) {
				f->bad_line = f->lines;
				return;
			}
			f->ref_line_no[f->nref] = f->lines;
			f->ref[f->nref++] = r;
		}
		p = nl ? nl + 1 : end;
	}
}

/* physmap_parse_maps with room for cap regions against the reference. */
static void check_parse(struct fz *f, size_t cap, struct region *out)
{
	size_t n = 0x5a5a, bad = 0xa5a5;
	int rc = physmap_parse_maps(f->text, f->len, out, cap, &n, &bad);
	int want = f->nref > cap ? -ENOSPC : f->bad_line ? -EINVAL : 0;
	if (rc != want)
		fz_fail(f, "parse with room for %zu: returned %d (line %zu), want %d%s", cap, rc, bad == 0xa5a5 ? 0 : bad,
			want, want == -EINVAL ? " (a bad line)" : want == -ENOSPC ? " (too many lines)" : "");
	if (rc == -EINVAL && bad != f->bad_line)
		fz_fail(f, "parse: bad line %zu, want %zu", bad, f->bad_line);
	if (rc != -EINVAL && bad != 0xa5a5)
		fz_fail(f, "parse returned %d and wrote the bad line (%zu)", rc, bad);
	if (rc && n != 0x5a5a)
		fz_fail(f, "parse returned %d and wrote the count (%zu)", rc, n);
	if (rc == 0 && n != f->nref)
		fz_fail(f, "parse: %zu regions, want %zu", n, f->nref);
	size_t seen = rc ? (cap < f->nref ? cap : f->nref) : n;
	for (size_t i = 0; i < seen; i++) {
		const struct region *g = &out[i];
		const struct ref *w = &f->ref[i];
		if (g->va != w->va || g->len != w->len || g->kind != w->kind)
			fz_fail(f, "parse: line %zu gives va 0x%llx len 0x%llx kind%s, want va 0x%llx len 0x%llx kind%s",
				f->ref_line_no[i], (unsigned long long)g->va, (unsigned long long)g->len,
				kind_word(g->kind), (unsigned long long)w->va, (unsigned long long)w->len,
				kind_word(w->kind));
		/* The property itself, apart from the reader: host-read-only
		 * is never guest-writable. */
		if (!w->host_w && g->kind == REGION_NORMAL)
			fz_fail(f, "parse: line %zu is not writable on the host, its region is writable (normal)",
				f->ref_line_no[i]);
	}
}

static bool overlap_any(const struct region *sorted, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (sorted[i - 1].va + (sorted[i - 1].len - 1) >= sorted[i].va)
			return true;
	return false;
}

static int cmp_region(const void *a, const void *b)
{
	const struct region *x = a, *y = b;
	return x->va < y->va ? -1 : x->va > y->va;
}

/* physmap_build over the parsed regions: each host region's clipped range is
 * covered by physical regions of its kind; excluded ones by none. */
static void check_build(struct fz *f, const struct region *host, size_t n)
{
	struct region *sorted = malloc((n ? n : 1) * sizeof(*sorted));
	struct region *mine = malloc((n ? n : 1) * sizeof(*mine));
	size_t cap = 2 * n + 2;
	struct phys_region *phys = malloc(cap * sizeof(*phys));
	if (!sorted || !mine || !phys)
		abort();
	memcpy(mine, host, n * sizeof(*mine));
	qsort(mine, n, sizeof(*mine), cmp_region);
	struct physmap pm;
	const char *why = NULL;
	int rc = physmap_build(&pm, NULL, host, n, sorted, phys, cap, &why);
	bool overlap = overlap_any(mine, n);
	if (overlap ? rc != -EINVAL : rc != 0)
		fz_fail(f, "physmap_build returned %d (%s), want %s", rc, why ? why : "",
			overlap ? "-EINVAL: regions overlap" : "0");
	if (rc)
		goto out;
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		const struct region *h = &mine[i];
		if (physmap_host_region(&pm, h->va) == NULL || physmap_host_region(&pm, h->va + (h->len - 1)) == NULL)
			fz_fail(f, "physmap_host_region misses host region va 0x%llx len 0x%llx",
				(unsigned long long)h->va, (unsigned long long)h->len);
		uint64_t lo = h->va < PAGE ? PAGE : h->va;
		uint64_t hi = h->va + h->len > VA_LIMIT || h->va + h->len < h->va ? VA_LIMIT : h->va + h->len;
		if (lo >= hi)
			continue;
		while (j < pm.count && pm.regions[j].va + pm.regions[j].len <= lo)
			j++;
		uint64_t c = lo;
		for (size_t k = j; k < pm.count && pm.regions[k].va < hi; k++) {
			const struct phys_region *p = &pm.regions[k];
			if (h->kind == REGION_EXCLUDED)
				fz_fail(f, "physmap: excluded host region va 0x%llx len 0x%llx has physical region va "
					   "0x%llx%s",
					(unsigned long long)h->va, (unsigned long long)h->len,
					(unsigned long long)p->va, kind_word(p->kind));
			if (p->kind != h->kind)
				fz_fail(f, "physmap: host region va 0x%llx len 0x%llx%s lies in physical region va "
					   "0x%llx len 0x%llx%s%s",
					(unsigned long long)h->va, (unsigned long long)h->len, kind_word(h->kind),
					(unsigned long long)p->va, (unsigned long long)p->len, kind_word(p->kind),
					p->kind == REGION_NORMAL ? " (guest-writable)" : "");
			if (p->va > c)
				break;
			c = p->va + p->len;
		}
		if (h->kind != REGION_EXCLUDED && c < hi)
			fz_fail(f, "physmap: host region va 0x%llx len 0x%llx%s not covered from 0x%llx",
				(unsigned long long)h->va, (unsigned long long)h->len, kind_word(h->kind),
				(unsigned long long)c);
	}
out:
	free(sorted);
	free(mine);
	free(phys);
}

FUZZ_ORACLE_END

/* ---- the hooks ---- */

int fuzz_init(void)
{
	return 0;
}

int fuzz_one(const uint8_t *data, size_t size, FILE *trace)
{
	struct fz f = { .text = (const char *)data, .len = size };
	/* Beyond MAX_LINES lines the input is cut (at a line end): the parser
	 * sees what the reference reads. */
	size_t lines = 0, cut = size;
	for (size_t i = 0; i < size; i++)
		if (data[i] == '\n' && ++lines == MAX_LINES) {
			cut = i + 1;
			break;
		}
	f.len = cut;
	size_t room = lines + 1;
	f.ref = malloc(room * sizeof(*f.ref));
	f.ref_line_no = malloc(room * sizeof(*f.ref_line_no));
	if (!f.ref || !f.ref_line_no)
		abort();
	ref_read(&f);
	if (trace)
		print_trace(trace, &f);
	/* Exactly as long as needed, so that ASan sees a write past the end. */
	struct region *out = malloc((f.nref ? f.nref : 1) * sizeof(*out));
	if (!out)
		abort();
	check_parse(&f, f.nref ? f.nref : 1, out);
	if (f.nref)
		check_parse(&f, f.nref - 1, out);
	/* The full parse again for the build (the short one overwrote it). */
	if (!f.bad_line) {
		size_t n = 0;
		if (physmap_parse_maps(f.text, f.len, out, f.nref ? f.nref : 1, &n, NULL))
			fz_fail(&f, "parse: second parse failed");
		check_build(&f, out, n);
	}
	free(out);
	free(f.ref);
	free(f.ref_line_no);
	return 0;
}
