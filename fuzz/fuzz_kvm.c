/* fuzz_kvm: the CPU as the oracle. One VM (lazy mode, CPL3, 2 MiB fault
 * blocks) is made at init over an arena of 8 blocks whose pages have fixed
 * kinds (rw, r--, r-x with `ret` bytes; runs cross block and 2 MiB edges).
 * Each input starts from kvmrt_reset (no slot, no table but the system's)
 * with every arena page mapped, then decodes:
 *   u8 n, n x u16 page           pages the host unmaps before the first op
 *   ops until the input ends, op = u8 % 3:
 *     0 access: u8 mode (read/write/exec), u8 size selector (1,2,4,8,16,32
 *       bytes as one instruction; 64 or 1..64 with rep movsb), u16 page,
 *       s8 delta from the page edge, u8 value seed
 *     1 unmap:  u16 page, u8 count-1 (1..4 pages, munmap)
 *     2 map:    u16 page, u8 count-1 (mapped again, fresh content)
 * The prediction, from the host layout alone (which pages are mapped and
 * their kind: rw -> read/write, r--/r-x -> read/execute, as the slot engine
 * maps them with SLOTS_EXEC): an access whose pages are all mapped and allowed
 * completes, with the bytes the host sees; otherwise it must stop with a #PF
 * record whose CR2 lies in the access and in a bad page, with the error
 * code's P/W/U/I bits right, or with KVM_RUN EFAULT when the bad page is
 * host-unmapped inside a block that already has a slot. After every op the
 * guest tables over the arena must equal a shadow MMU of the slotted blocks
 * (check_range), and only blocks the access touched may have gained slots.
 * Debug: replay the input with --trace to see the decoded ops. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "fuzzer.h"
#include "shadow.h"
#include "../kvmrt/kvmrt_internal.h"

#define FK_BLOCK  (2ull << 20)
#define FK_BLOCKS 8
#define FK_PAGES  (FK_BLOCKS * FK_BLOCK / 4096)
#define FK_LEN    (FK_BLOCKS * FK_BLOCK)

enum fk_kind { FK_RW, FK_RO, FK_RX };
enum fk_mode { FK_READ, FK_WRITE, FK_EXEC };

static struct kvmrt *fk_rt;
static uint8_t *fk_arena;                  /* starts 4 KiB past a block edge: odd region edges */
static uint8_t fk_kind[FK_PAGES];
static bool fk_mapped[FK_PAGES];
static struct shadow fk_shadow;
static bool fk_was[FK_PAGES];             /* slotted before the current access */

/* Runs of non-rw pages: [first, first+count) of a kind. Chosen to cross
 * the 2 MiB block edges (page 511/512 of the arena is 4 KiB before one). */
static const struct { unsigned first, count; enum fk_kind kind; } fk_runs[] = {
	{ 509, 5, FK_RO }, { 700, 1, FK_RX }, { 1020, 8, FK_RX }, { 1500, 40, FK_RO },
	{ 2046, 3, FK_RO }, { 2600, 2, FK_RX }, { 3580, 12, FK_RX }, { 4000, 95, FK_RO },
};

static int fk_prot(enum fk_kind k)
{
	return k == FK_RW ? PROT_READ | PROT_WRITE : k == FK_RO ? PROT_READ : PROT_READ | PROT_EXEC;
}

/* (Re)maps page i with its kind and content: rw pages a pattern, r--/r-x
 * pages `ret` bytes, so an execute anywhere returns. */
static int fk_map_page(unsigned i)
{
	uint8_t *p = fk_arena + (size_t)i * 4096;
	void *q = mmap(p, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	if (q != p)
		return -1;
	memset(p, fk_kind[i] == FK_RW ? (int)(i & 0xff) : 0xc3, 4096);
	if (fk_kind[i] != FK_RW && mprotect(p, 4096, fk_prot(fk_kind[i])))
		return -1;
	fk_mapped[i] = true;
	return 0;
}

int fuzz_init(void)
{
	struct kvmrt_config cfg = { .block_size = FK_BLOCK, .quiet = true, .max_vcpus = 2 };
	char why[400];

	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("SKIP kvm: /dev/kvm: %s\n", strerror(errno));
		return 1;
	}
	/* The arena must exist before kvmrt_open so the physical map sees
	 * its kinds. Placed above the break, inside what kvmrt keeps. */
	uint64_t at = (((uint64_t)(uintptr_t)sbrk(0) + (32ull << 30)) & ~(FK_BLOCK - 1)) + 4096;
	fk_arena = mmap((void *)(uintptr_t)at, FK_LEN, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (fk_arena == MAP_FAILED) {
		printf("SKIP kvm: cannot map the arena at 0x%llx: %s\n", (unsigned long long)at, strerror(errno));
		return 1;
	}
	for (size_t r = 0; r < sizeof(fk_runs) / sizeof(fk_runs[0]); r++)
		for (unsigned i = fk_runs[r].first; i < fk_runs[r].first + fk_runs[r].count; i++)
			fk_kind[i] = (uint8_t)fk_runs[r].kind;
	for (unsigned i = 0; i < FK_PAGES; i++)
		if (fk_map_page(i)) {
			printf("SKIP kvm: cannot prepare arena page %u\n", i);
			return 1;
		}
	int err = kvmrt_open(&fk_rt, &cfg, why, sizeof(why));
	if (err) {
		printf("SKIP kvm: %s\n", why);
		return 1;
	}
	if (shadow_init(&fk_shadow, 4096)) {
		printf("fuzz_kvm: out of memory\n");
		return 1;
	}
	return 0;
}

/* ---- the guest side --------------------------------------------------------- */

struct fk_acc {
	uint64_t addr;
	uint32_t size;
	uint32_t mode;
	uint32_t rep;        /* rep movsb of size bytes */
	uint8_t buf[64];     /* read: what the guest saw; write: what it stores */
};

static uint64_t fk_guest(uint64_t p)
{
	struct fk_acc *a = (struct fk_acc *)(uintptr_t)p;
	void *t = (void *)(uintptr_t)a->addr, *b = a->buf;

	if (a->mode == FK_EXEC) {
		__asm__ volatile("call *%0" :: "r"(t) : "memory", "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9",
				 "r10", "r11");
		return 1;
	}
	if (a->rep) {
		size_t n = a->size;
		void *src = a->mode == FK_READ ? t : b, *dst = a->mode == FK_READ ? b : t;
		__asm__ volatile("rep movsb" : "+S"(src), "+D"(dst), "+c"(n) :: "memory");
		return 1;
	}
	bool rd = a->mode == FK_READ;
	switch (a->size) {
	case 1:
		if (rd) __asm__ volatile("movb (%0), %%al; movb %%al, (%1)" :: "r"(t), "r"(b) : "rax", "memory");
		else __asm__ volatile("movb (%1), %%al; movb %%al, (%0)" :: "r"(t), "r"(b) : "rax", "memory");
		break;
	case 2:
		if (rd) __asm__ volatile("movw (%0), %%ax; movw %%ax, (%1)" :: "r"(t), "r"(b) : "rax", "memory");
		else __asm__ volatile("movw (%1), %%ax; movw %%ax, (%0)" :: "r"(t), "r"(b) : "rax", "memory");
		break;
	case 4:
		if (rd) __asm__ volatile("movl (%0), %%eax; movl %%eax, (%1)" :: "r"(t), "r"(b) : "rax", "memory");
		else __asm__ volatile("movl (%1), %%eax; movl %%eax, (%0)" :: "r"(t), "r"(b) : "rax", "memory");
		break;
	case 8:
		if (rd) __asm__ volatile("movq (%0), %%rax; movq %%rax, (%1)" :: "r"(t), "r"(b) : "rax", "memory");
		else __asm__ volatile("movq (%1), %%rax; movq %%rax, (%0)" :: "r"(t), "r"(b) : "rax", "memory");
		break;
	case 16:
		if (rd) __asm__ volatile("movdqu (%0), %%xmm0; movdqu %%xmm0, (%1)" :: "r"(t), "r"(b) : "xmm0", "memory");
		else __asm__ volatile("movdqu (%1), %%xmm0; movdqu %%xmm0, (%0)" :: "r"(t), "r"(b) : "xmm0", "memory");
		break;
	default:
		if (rd) __asm__ volatile("vmovdqu (%0), %%ymm0; vmovdqu %%ymm0, (%1); vzeroupper" :: "r"(t), "r"(b) : "xmm0", "memory");
		else __asm__ volatile("vmovdqu (%1), %%ymm0; vmovdqu %%ymm0, (%0); vzeroupper" :: "r"(t), "r"(b) : "xmm0", "memory");
		break;
	}
	return 1;
}

/* ---- the model ------------------------------------------------------------ */

struct fk_state {
	FILE *trace;
	unsigned op;
	char last[160];
};

static void fk_fail(struct fk_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fk_fail(struct fk_state *st, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_kvm: op %u (%s): ", st->op, st->last);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static unsigned fk_page(uint64_t va)
{
	return (unsigned)((va - (uint64_t)(uintptr_t)fk_arena) / 4096);
}

/* The fault block (its PA start) of arena page i. */
static uint64_t fk_block(unsigned i)
{
	uint64_t pa;
	struct phys_block b;

	physmap_translate(&fk_rt->pm, (uint64_t)(uintptr_t)(fk_arena + (size_t)i * 4096), &pa);
	physmap_fault_block(&fk_rt->pm, pa, &b);
	return b.pa;
}

static bool fk_slotted(unsigned i)
{
	return slots_has_slot(&fk_rt->slots, fk_block(i));
}

static bool fk_allowed(unsigned i, enum fk_mode m)
{
	return m == FK_READ || (m == FK_WRITE ? fk_kind[i] == FK_RW : fk_kind[i] != FK_RW);
}

/* Shadow of the arena: every slotted fault block mapped as the engine must. */
static void fk_shadow_sync(void)
{
	shadow_clear(&fk_shadow);
	for (unsigned i = 0; i < FK_PAGES; i++) {
		uint64_t va = (uint64_t)(uintptr_t)(fk_arena + (size_t)i * 4096), pa;
		if (!fk_slotted(i))
			continue;
		physmap_translate(&fk_rt->pm, va, &pa);
		uint32_t opts = PT_USER | (fk_kind[i] == FK_RW ? PT_R | PT_W : PT_R | PT_X);
		shadow_map(&fk_shadow, va, 4096, pa, opts);
	}
	shadow_merge(&fk_shadow);
}

static void fk_check_tables(struct fk_state *st)
{
	char buf[256];
	const char *bad;

	fk_shadow_sync();
	bad = check_range(&fk_rt->pt, &fk_shadow, (uint64_t)(uintptr_t)fk_arena, FK_LEN, buf, sizeof(buf));
	if (bad)
		fk_fail(st, "tables over the arena differ from the shadow: %s", bad);
}

static void fk_access(struct fk_state *st, enum fk_mode mode, unsigned size, bool rep, uint64_t va, uint8_t seed)
{
	static struct fk_acc a;   /* heap-like: the guest writes into it */
	unsigned first = fk_page(va), last = fk_page(va + size - 1);
	bool ok_pred = true;
	struct kvmrt_fault f;
	uint64_t r;

	memset(&a, 0, sizeof(a));
	a.addr = va;
	a.size = size;
	a.mode = mode;
	a.rep = rep;
	for (unsigned i = 0; i < size; i++)
		a.buf[i] = (uint8_t)(seed + i * 13);
	for (unsigned p = first; p <= last; p++)
		ok_pred &= fk_mapped[p] && fk_allowed(p, mode);
	for (unsigned p = 0; p < FK_PAGES; p++)
		fk_was[p] = fk_slotted(p);
	snprintf(st->last, sizeof(st->last), "%s 0x%llx size %u%s", mode == FK_READ ? "read" : mode == FK_WRITE ? "write" : "exec",
		 (unsigned long long)va, size, rep ? " (rep movsb)" : "");
	if (st->trace)
		fprintf(st->trace, "# kvm access %s -> predicted %s\n", st->last, ok_pred ? "ok" : "fault");
	int err = kvmrt_call(fk_rt, fk_guest, (uint64_t)(uintptr_t)&a, &r, &f);
	char fs[400];
	kvmrt_fault_str(&f, fs, sizeof(fs));
	if (ok_pred) {
		if (err)
			fk_fail(st, "predicted success, got %s", fs);
		if (mode == FK_READ && memcmp(a.buf, (void *)(uintptr_t)va, size))
			fk_fail(st, "guest read bytes that differ from host memory");
		if (mode == FK_WRITE)
			for (unsigned i = 0; i < size; i++)
				if (((uint8_t *)(uintptr_t)va)[i] != (uint8_t)(seed + i * 13))
					fk_fail(st, "byte %u of the guest's write is not in host memory", i);
	} else {
		if (!err)
			fk_fail(st, "predicted a fault, the access completed");
		if (f.reason == KVMRT_PAGE_FAULT) {
			unsigned p = fk_page(f.addr);
			uint64_t want_w = mode == FK_WRITE ? 2 : 0, want_i = mode == FK_EXEC ? 0x10 : 0;
			if (f.addr < va || f.addr >= va + size)
				fk_fail(st, "CR2 0x%llx outside the access: %s", (unsigned long long)f.addr, fs);
			/* The entry is present once the block has a slot, whether
			 * or not the host still has the page: then the CPU checks
			 * W/NX first. A host-unmapped page of an unslotted block
			 * is "not present" and kvmrt refuses to slot it. */
			bool present = fk_mapped[p] || fk_slotted(p);
			bool prot = present && !fk_allowed(p, mode);
			bool absent = !present;
			if (!prot && !absent)
				fk_fail(st, "CR2 0x%llx is in a page that should not #PF (%s, host %s, block %s): %s",
					(unsigned long long)f.addr, fk_kind[p] == FK_RW ? "rw" : fk_kind[p] == FK_RO ? "r--" : "r-x",
					fk_mapped[p] ? "mapped" : "unmapped", fk_slotted(p) ? "slotted" : "unslotted", fs);
			if ((f.error_code & 1) != (prot ? 1u : 0u) || (f.error_code & 2) != want_w ||
			    !(f.error_code & 4) || (f.error_code & 0x10) != want_i)
				fk_fail(st, "error code 0x%llx wrong for a %s %s page: %s", (unsigned long long)f.error_code,
					absent ? "host-unmapped" : "protected", st->last, fs);
		} else if (f.reason == KVMRT_EFAULT) {
			/* Only a host-unmapped page of a block with a slot gives
			 * a present entry over missing memory. */
			bool any = false;
			for (unsigned p = first; p <= last; p++)
				any |= !fk_mapped[p] && fk_slotted(p) && fk_allowed(p, mode);
			if (!any)
				fk_fail(st, "KVM_RUN EFAULT without a host-unmapped page in a slotted block: %s", fs);
		} else {
			fk_fail(st, "predicted a #PF or EFAULT, got %s", fs);
		}
	}
	/* Slots appear only for blocks the access touched, and only where the
	 * host has the touched page. */
	for (unsigned p = 0; p < FK_PAGES; p++) {
		if (fk_was[p] || !fk_slotted(p))
			continue;
		uint64_t blk = fk_block(p);
		bool why_ok = (fk_block(first) == blk && fk_mapped[first]) || (fk_block(last) == blk && fk_mapped[last]);
		if (!why_ok)
			fk_fail(st, "page %u's block (pa 0x%llx) gained a slot the access had no reason to create", p,
				(unsigned long long)blk);
	}
	fk_check_tables(st);
}

static void fk_unmap(struct fk_state *st, unsigned page, unsigned n)
{
	for (unsigned i = page; i < page + n && i < FK_PAGES; i++) {
		munmap(fk_arena + (size_t)i * 4096, 4096);
		fk_mapped[i] = false;
	}
	snprintf(st->last, sizeof(st->last), "unmap pages %u..+%u", page, n);
	if (st->trace)
		fprintf(st->trace, "# kvm host unmap 0x%llx len 0x%x\n",
			(unsigned long long)(uintptr_t)(fk_arena + (size_t)page * 4096), n * 4096);
}

static void fk_map(struct fk_state *st, unsigned page, unsigned n)
{
	for (unsigned i = page; i < page + n && i < FK_PAGES; i++)
		if (fk_map_page(i))
			fk_fail(st, "cannot map arena page %u again", i);
	snprintf(st->last, sizeof(st->last), "map pages %u..+%u", page, n);
	if (st->trace)
		fprintf(st->trace, "# kvm host map 0x%llx len 0x%x\n",
			(unsigned long long)(uintptr_t)(fk_arena + (size_t)page * 4096), n * 4096);
}

static const unsigned fk_sizes[] = { 1, 2, 4, 8, 16, 32, 64 };

int fuzz_one(const uint8_t *data, size_t size, FILE *trace)
{
	struct fuzz_in in = { data, size };
	struct fk_state st = { .trace = trace };
	char why[400];

	/* Every input from the same state: all pages mapped, no arena slot. */
	for (unsigned i = 0; i < FK_PAGES; i++)
		if (!fk_mapped[i] && fk_map_page(i))
			fk_fail(&st, "cannot restore arena page %u", i);
	if (kvmrt_reset(fk_rt, why, sizeof(why)))
		fk_fail(&st, "kvmrt_reset: %s", why);
	unsigned n = fuzz_u8(&in) % 8;
	for (unsigned i = 0; i < n; i++)
		fk_unmap(&st, fuzz_u16(&in) % FK_PAGES, 1);
	for (st.op = 0; in.left && st.op < 64; st.op++) {
		uint8_t op = fuzz_u8(&in) % 3;
		if (op == 0) {
			enum fk_mode mode = (enum fk_mode)(fuzz_u8(&in) % 3);
			uint8_t sel = fuzz_u8(&in) % 8;
			unsigned page = fuzz_u16(&in) % FK_PAGES;
			int delta = (int8_t)fuzz_u8(&in);
			uint8_t seed = fuzz_u8(&in);
			bool rep = sel >= 6 && mode != FK_EXEC;
			unsigned sz = mode == FK_EXEC ? 1u : sel < 6 ? fk_sizes[sel] : sel == 6 ? 64u : 1u + seed % 64u;
			int64_t off = (int64_t)page * 4096 + delta;
			if (off < 0)
				off = 0;
			if (off > (int64_t)(FK_LEN - sz))
				off = (int64_t)(FK_LEN - sz);
			fk_access(&st, mode, sz, rep, (uint64_t)(uintptr_t)fk_arena + (uint64_t)off, seed);
		} else {
			unsigned page = fuzz_u16(&in) % FK_PAGES, cnt = 1 + fuzz_u8(&in) % 4;
			if (op == 1)
				fk_unmap(&st, page, cnt);
			else
				fk_map(&st, page, cnt);
		}
	}
	return 0;
}
