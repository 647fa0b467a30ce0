/* fuzz_kvm: the CPU as the oracle. One VM (lazy mode, CPL3, 2 MiB fault
 * blocks) is made at init over an arena of 8 blocks whose pages have fixed
 * kinds (rw, r--, r-x holding `ret` bytes; runs cross block and 2 MiB edges).
 * Byte format: fuzz/README.md, "fuzz_kvm byte format".
 *
 * Speed (the KVM exits cost 20-30 us each here, so an input may spend only
 * ~10-20 of them): everything per page and per fault block is computed once
 * at init (each arena page's block; each block's VA, length and options by
 * this file's own rule, checked against the physical map's blocks, its PA
 * from the physical map's translation); a warm-up call
 * slots what every guest call touches (code, stack, the access record, TLS)
 * and kvmrt_checkpoint remembers that state. Each input ends with
 * kvmrt_rollback (deletes only the slots it made, newest first, and unmaps
 * their blocks: canonical form makes the tables exactly those of the
 * checkpoint), remaps the host pages it had unmapped and verifies the
 * result (slot count, pool pages, empty tables over the arena); the next
 * input starts with every vCPU's registers and CR3 reloaded. So every input
 * runs from the same state and the same code path (AFL++ stability), and a
 * crash file, a broken rollback's included, reproduces alone.
 * The work per input is bounded: at most FK_MAX_ACCESS guest accesses,
 * FK_MAX_HOST host map/unmap actions, FK_MAX_OPS operations.
 *
 * Oracles, for every access:
 *   - prediction from the host layout alone (which pages are mapped, their
 *     kind: rw -> read/write, r--/r-x -> read/execute, as the slot engine
 *     maps them with SLOTS_EXEC): an access whose pages are all mapped and
 *     allowed completes, reads see exactly the host's bytes and writes land
 *     in host memory; otherwise it stops with a #PF record whose CR2 lies in
 *     the access and in a page that must fault, with the error code's P, W,
 *     U and I bits right, or with KVM_RUN EFAULT when the bad page is
 *     host-unmapped inside a block that already has a slot;
 *   - slots: only the blocks of the access's first and last page may gain
 *     a slot, only where the host has that page, and the slot count grows by
 *     exactly the blocks found newly slotted (no slot anywhere else);
 *   - tables: over the blocks the access touched (and a page either side),
 *     the CPU-style walk (check_range) equals a shadow that holds each
 *     slotted block as one range (block VA -> its PA, precomputed options);
 *   - at the end of the input: the model against the engine for every
 *     block, the whole arena against the shadow, and check_slots (DESIGN.md
 *     invariant 5 plus the table invariants, over every table); with
 *     FUZZ_KVM_CHECK_EACH=1 check_slots also after every operation.
 * Debug: replay the input with --trace: a trace kvmpt-trace can run (the
 * arena's regions, layout, a `fault` for every block an access is predicted
 * to slot), with the accesses and host actions as `#` comments. */
#include <errno.h>
#include <signal.h>
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
#define FK_MAXB   64          /* fault blocks over the arena (kind runs cut them) */

#define FK_MAX_OPS    32
#define FK_MAX_ACCESS 8
#define FK_MAX_HOST   16
#define FK_MAX_UNMAP0 7

enum fk_kind { FK_RW, FK_RO, FK_RX };
enum fk_mode { FK_READ, FK_WRITE, FK_EXEC };

struct fk_blk {
	uint64_t va, len, pa;
	uint32_t opts;       /* what the engine must write: PT_USER | rw or rx */
	unsigned first;      /* first arena page in it (blocks start before the arena) */
	bool slotted;        /* our model */
};

static struct kvmrt *fk_rt;
static uint8_t *fk_arena;                  /* starts 4 KiB past a block edge: odd region edges */
static uint64_t fk_base;                   /* (uint64_t)fk_arena */
static uint8_t fk_kind[FK_PAGES];
static bool fk_mapped[FK_PAGES];
static uint8_t fk_pblk[FK_PAGES];          /* page -> index into fk_blk */
static struct fk_blk fk_blk[FK_MAXB];
static unsigned fk_nblk;
static unsigned fk_unmapped[FK_PAGES];     /* pages to map again before the next input */
static unsigned fk_nunmapped;
static struct shadow fk_shadow;
/* FUZZ_KVM_CHECK_EACH=1: check_slots after every operation (names the
 * operation that broke an invariant; slow: the walk covers every table).
 * Otherwise once at the end of the input, which sees the same breakage:
 * within an input the engine only ever adds entries and slots. */
static bool fk_each;
/* The checkpoint every input starts from and is rolled back to. */
static uint32_t fk_ckpt_slots, fk_ckpt_used;

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

static const char *fk_kind_name(unsigned p)
{
	return fk_kind[p] == FK_RW ? "rw" : fk_kind[p] == FK_RO ? "r--" : "r-x";
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

static void fk_unmap_page(unsigned i)
{
	if (!fk_mapped[i])
		return;
	munmap(fk_arena + (size_t)i * 4096, 4096);
	fk_mapped[i] = false;
	fk_unmapped[fk_nunmapped++] = i;
}

/* ---- the guest side --------------------------------------------------------- */

struct fk_acc {
	uint64_t addr;
	uint32_t size;
	uint32_t mode;
	uint32_t rep;        /* rep movsb of size bytes */
	uint8_t buf[64];     /* read: what the guest saw; write: what it stores */
};

static struct fk_acc fk_a;   /* static: slotted by the warm-up call */

/* Runs in the guest. No sanitizer or coverage instrumentation: it would
 * touch shadow memory and counters in blocks with no slot, each one a #PF
 * exit and a slot that is not the access's. */
#if defined(__clang__)
__attribute__((no_sanitize("address", "undefined", "coverage")))
#endif
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

/* ---- init --------------------------------------------------------------- */

static bool fk_ro(unsigned i)
{
	return fk_kind[i] != FK_RW;
}

/* Each arena page's fault block, by this file's own rule: a run of pages of
 * one kind (r-- and r-x are both read-only regions) cut by the 2 MiB grid
 * (VA and PA are congruent modulo the block size); the rw runs at both ends
 * go on into the holes around the arena (holes are normal regions) up to
 * the grid. The PA is the physical map's translation of the block's start;
 * the options are this file's rule too. Then the engine's physical map must
 * give the same blocks: a difference is a FAIL, not a skip. */
static int fk_precompute(void)
{
	for (unsigned i = 0, j; i < FK_PAGES; i = j) {
		uint64_t va = fk_base + (uint64_t)i * 4096;
		uint64_t cell = va & ~(FK_BLOCK - 1), lo = cell, hi = cell + FK_BLOCK, pa;
		for (j = i; j < FK_PAGES && fk_ro(j) == fk_ro(i) && fk_base + (uint64_t)j * 4096 < hi; j++)
			;
		if (i > 0 && fk_ro(i - 1) != fk_ro(i))
			lo = va;
		if (j < FK_PAGES)
			hi = fk_base + (uint64_t)j * 4096 < hi ? fk_base + (uint64_t)j * 4096 : hi;
		if (fk_nblk == FK_MAXB) {
			printf("fuzz_kvm: more than %d fault blocks over the arena\n", FK_MAXB);
			return -1;
		}
		if (physmap_translate(&fk_rt->pm, lo, &pa)) {
			printf("fuzz_kvm: FAIL: block va 0x%llx is outside the physical map\n", (unsigned long long)lo);
			return -1;
		}
		fk_blk[fk_nblk] = (struct fk_blk){ .va = lo, .len = hi - lo, .pa = pa, .first = i,
						   .opts = PT_USER | PT_R | (fk_ro(i) ? PT_X : PT_W) };
		for (unsigned p = i; p < j; p++)
			fk_pblk[p] = (uint8_t)fk_nblk;
		fk_nblk++;
	}
	for (unsigned i = 0; i < FK_PAGES; i++) {
		const struct fk_blk *m = &fk_blk[fk_pblk[i]];
		uint64_t va = fk_base + (uint64_t)i * 4096, pa;
		struct phys_block b;
		if (physmap_translate(&fk_rt->pm, va, &pa) || physmap_fault_block(&fk_rt->pm, pa, &b) ||
		    b.va != m->va || b.len != m->len || b.pa != m->pa || pa - b.pa != va - b.va ||
		    (b.kind == REGION_RO) != fk_ro(i) || b.kind == REGION_MMIO) {
			printf("fuzz_kvm: FAIL: arena page %u (va 0x%llx, %s): the physical map's fault block "
			       "(va 0x%llx len 0x%llx pa 0x%llx kind %d) is not va 0x%llx len 0x%llx pa 0x%llx\n",
			       i, (unsigned long long)va, fk_kind_name(i), (unsigned long long)b.va,
			       (unsigned long long)b.len, (unsigned long long)b.pa, (int)b.kind,
			       (unsigned long long)m->va, (unsigned long long)m->len, (unsigned long long)m->pa);
			return -1;
		}
	}
	return 0;
}

static void fk_init_hang(int sig)
{
	(void)sig;
	static const char msg[] = "fuzz_kvm: FAIL: init did not finish in 60 s (an engine loop?)\n";
	if (write(2, msg, sizeof(msg) - 1) < 0) {
	}
	abort();
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
	 * its kinds. Placed above the break, inside what kvmrt keeps, 4 KiB
	 * past a 1 GiB edge: its 2 MiB blocks never straddle a 1 GiB entry,
	 * and its page directory holds nothing else, whatever the ASLR draw
	 * (the same tables, so the same edges, in every run). */
	uint64_t at = (((uint64_t)(uintptr_t)sbrk(0) + (32ull << 30) + (1ull << 30) - 1) & ~((1ull << 30) - 1)) + 4096;
	fk_arena = mmap((void *)(uintptr_t)at, FK_LEN, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (fk_arena == MAP_FAILED) {
		printf("SKIP kvm: cannot map the arena at 0x%llx: %s\n", (unsigned long long)at, strerror(errno));
		return 1;
	}
	fk_base = (uint64_t)(uintptr_t)fk_arena;
	for (size_t r = 0; r < sizeof(fk_runs) / sizeof(fk_runs[0]); r++)
		for (unsigned i = fk_runs[r].first; i < fk_runs[r].first + fk_runs[r].count; i++)
			fk_kind[i] = (uint8_t)fk_runs[r].kind;
	for (unsigned i = 0; i < FK_PAGES; i++)
		if (fk_map_page(i)) {
			printf("SKIP kvm: cannot prepare arena page %u\n", i);
			return 1;
		}
	/* Past this point a failure is the engine's or kvmrt's, not the
	 * machine's: FAIL and abort (a skip would hide it). */
	signal(SIGALRM, fk_init_hang);
	alarm(60);
	int err = kvmrt_open(&fk_rt, &cfg, why, sizeof(why));
	if (err) {
		printf("SKIP kvm: %s\n", why);
		return 1;
	}
	if (shadow_init(&fk_shadow, 2 * FK_MAXB)) {
		printf("fuzz_kvm: out of memory\n");
		return 1;
	}
	if (fk_precompute()) {
		fflush(stdout);
		abort();
	}
	/* Warm-up: a read and a write of the access record itself slot the
	 * code, the stack, the record and TLS; that is the checkpoint. */
	struct kvmrt_fault f;
	uint64_t r;
	for (uint32_t m = FK_READ; m <= FK_WRITE; m++) {
		fk_a = (struct fk_acc){ .addr = (uint64_t)(uintptr_t)&fk_a.buf[32], .size = 8, .mode = m };
		if (kvmrt_call(fk_rt, fk_guest, (uint64_t)(uintptr_t)&fk_a, &r, &f)) {
			kvmrt_fault_str(&f, why, sizeof(why));
			printf("fuzz_kvm: FAIL: warm-up call failed: %s\n", why);
			fflush(stdout);
			abort();
		}
	}
	alarm(0);
	signal(SIGALRM, SIG_DFL);
	kvmrt_checkpoint(fk_rt);
	fk_ckpt_slots = kvmrt_slot_count(fk_rt);
	fk_ckpt_used = fk_rt->pool.used;
	const char *e = getenv("FUZZ_KVM_CHECK_EACH");
	fk_each = e && *e && strcmp(e, "0");
	return 0;
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

	if (st->trace)
		fflush(st->trace);
	fprintf(stderr, "fuzz_kvm: FAIL after operation %u (%s): ", st->op, st->last);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	abort();
}

static unsigned fk_page(uint64_t va)
{
	return (unsigned)((va - fk_base) / 4096);
}

static bool fk_allowed(unsigned i, enum fk_mode m)
{
	return m == FK_READ || (m == FK_WRITE ? fk_kind[i] == FK_RW : fk_kind[i] != FK_RW);
}

static bool fk_slotted(unsigned p)
{
	return fk_blk[fk_pblk[p]].slotted;
}

/* Tables over blocks [b0, b1] and a page either side against the shadow. */
static void fk_check_blocks(struct fk_state *st, unsigned b0, unsigned b1)
{
	char buf[256];
	uint64_t lo = fk_blk[b0].va, hi = fk_blk[b1].va + fk_blk[b1].len;

	if (b0 > 0)
		lo -= 4096;
	if (b1 + 1 < fk_nblk)
		hi += 4096;
	const char *bad = check_range(&fk_rt->pt, &fk_shadow, lo, hi - lo, buf, sizeof(buf));
	if (bad)
		fk_fail(st, "tables over 0x%llx-0x%llx differ from the shadow of the slotted blocks: %s",
			(unsigned long long)lo, (unsigned long long)hi, bad);
}

static void fk_check_slots(struct fk_state *st)
{
	char buf[256];
	const char *bad = check_slots(&fk_rt->slots, buf, sizeof(buf));

	if (bad)
		fk_fail(st, "check_slots: %s", bad);
}

/* The model's view of slots against the engine's, block by block. */
static void fk_check_model(struct fk_state *st)
{
	for (unsigned b = 0; b < fk_nblk; b++)
		if (slots_has_slot(&fk_rt->slots, fk_blk[b].pa) != fk_blk[b].slotted)
			fk_fail(st, "block pa 0x%llx (va 0x%llx): the engine says %s, the model %s",
				(unsigned long long)fk_blk[b].pa, (unsigned long long)fk_blk[b].va,
				fk_blk[b].slotted ? "no slot" : "slot", fk_blk[b].slotted ? "slot" : "no slot");
}

/* Would the CPU fault on page p for mode? Present once the block has a
 * slot, whether or not the host still has the page (then W/NX are checked);
 * a host-unmapped page of an unslotted block is refused by kvmrt. */
static bool fk_page_ok(unsigned p, enum fk_mode mode)
{
	return fk_mapped[p] && fk_allowed(p, mode);
}

static void fk_access(struct fk_state *st, enum fk_mode mode, unsigned size, bool rep, uint64_t va, uint8_t seed)
{
	unsigned first = fk_page(va), last = fk_page(va + size - 1);
	unsigned bf = fk_pblk[first], bl = fk_pblk[last];
	bool ok_pred = true;
	struct kvmrt_fault f;
	uint64_t r;

	fk_a = (struct fk_acc){ .addr = va, .size = size, .mode = mode, .rep = rep };
	for (unsigned i = 0; i < size; i++)
		fk_a.buf[i] = (uint8_t)(seed + i * 13);
	for (unsigned p = first; p <= last; p++)
		ok_pred &= fk_page_ok(p, mode);
	snprintf(st->last, sizeof(st->last), "%s 0x%llx size %u%s", mode == FK_READ ? "read" : mode == FK_WRITE ? "write" : "exec",
		 (unsigned long long)va, size, rep ? " (rep movsb)" : "");
	if (st->trace) {
		fprintf(st->trace, "# access %s: page %u (%s, host %s, block %s)", st->last, first, fk_kind_name(first),
			fk_mapped[first] ? "mapped" : "unmapped", fk_slotted(first) ? "slotted" : "unslotted");
		if (last != first)
			fprintf(st->trace, " to page %u (%s, host %s, block %s)", last, fk_kind_name(last),
				fk_mapped[last] ? "mapped" : "unmapped", fk_slotted(last) ? "slotted" : "unslotted");
		fprintf(st->trace, " -> predicted %s\n", ok_pred ? "ok" : "fault");
	}
	uint32_t count0 = kvmrt_slot_count(fk_rt);
	int err = kvmrt_call(fk_rt, fk_guest, (uint64_t)(uintptr_t)&fk_a, &r, &f);
	char fs[400];
	if (err)
		kvmrt_fault_str(&f, fs, sizeof(fs));
	else
		fs[0] = 0;
	/* Slots appear only for the blocks of the first and last page, and
	 * only where the host has that page; nowhere else. Taken into the
	 * model first: the access's last fault sees the blocks it slotted
	 * (a read over a mapped and an unmapped page of one unslotted block
	 * slots the block on the first page, then finds the second present
	 * over missing memory: KVM_RUN EFAULT). */
	unsigned gained = 0;
	for (unsigned k = 0; k < 2; k++) {
		unsigned b = k ? bl : bf;
		if (k && bl == bf)
			break;
		if (fk_blk[b].slotted || !slots_has_slot(&fk_rt->slots, fk_blk[b].pa))
			continue;
		if (!((bf == b && fk_mapped[first]) || (bl == b && fk_mapped[last])))
			fk_fail(st, "block pa 0x%llx (va 0x%llx) gained a slot the access had no reason to create",
				(unsigned long long)fk_blk[b].pa, (unsigned long long)fk_blk[b].va);
		fk_blk[b].slotted = true;
		/* The slot engine's side, as kvmpt-trace can run it: a fault
		 * that kvmrt serviced. */
		if (st->trace)
			fprintf(st->trace, "fault 0x%llx\n", (unsigned long long)(fk_base + (uint64_t)(b == bf ? first : last) * 4096));
		if (shadow_map(&fk_shadow, fk_blk[b].va, fk_blk[b].len, fk_blk[b].pa, fk_blk[b].opts))
			fk_fail(st, "the shadow refused block va 0x%llx", (unsigned long long)fk_blk[b].va);
		gained++;
	}
	if (ok_pred) {
		if (err)
			fk_fail(st, "predicted success, got %s", fs);
		if (mode == FK_READ && memcmp(fk_a.buf, (void *)(uintptr_t)va, size))
			fk_fail(st, "guest read bytes that differ from host memory");
		if (mode == FK_WRITE)
			for (unsigned i = 0; i < size; i++)
				if (((uint8_t *)(uintptr_t)va)[i] != (uint8_t)(seed + i * 13))
					fk_fail(st, "byte %u of the guest's write is not in host memory", i);
	} else {
		if (!err)
			fk_fail(st, "predicted a fault, the access completed");
		if (f.reason == KVMRT_PAGE_FAULT) {
			uint64_t want_w = mode == FK_WRITE ? 2 : 0, want_i = mode == FK_EXEC ? 0x10 : 0;
			if (f.addr < va || f.addr >= va + size)
				fk_fail(st, "CR2 0x%llx outside the access: %s", (unsigned long long)f.addr, fs);
			unsigned p = fk_page(f.addr);
			bool present = fk_mapped[p] || fk_slotted(p);
			bool prot = present && !fk_allowed(p, mode);
			bool absent = !present;
			if (!prot && !absent)
				fk_fail(st, "CR2 0x%llx is in a page that should not #PF (%s, host %s, block %s): %s",
					(unsigned long long)f.addr, fk_kind_name(p), fk_mapped[p] ? "mapped" : "unmapped",
					fk_slotted(p) ? "slotted" : "unslotted", fs);
			if ((f.error_code & 1) != (prot ? 1u : 0u) || (f.error_code & 2) != want_w ||
			    !(f.error_code & 4) || (f.error_code & 0x10) != want_i)
				fk_fail(st, "error code 0x%llx wrong for a %s %s page: %s", (unsigned long long)f.error_code,
					absent ? "host-unmapped" : "protected", st->last, fs);
			if (st->trace)
				fprintf(st->trace, "# -> #PF cr2 0x%llx error code 0x%llx\n", (unsigned long long)f.addr,
					(unsigned long long)f.error_code);
		} else if (f.reason == KVMRT_EFAULT) {
			/* Only a host-unmapped page of a block with a slot gives
			 * a present entry over missing memory. */
			bool any = false;
			for (unsigned p = first; p <= last; p++)
				any |= !fk_mapped[p] && fk_slotted(p) && fk_allowed(p, mode);
			if (!any)
				fk_fail(st, "KVM_RUN EFAULT without a host-unmapped page in a slotted block: %s", fs);
			if (st->trace)
				fprintf(st->trace, "# -> KVM_RUN EFAULT\n");
		} else {
			fk_fail(st, "predicted a #PF or EFAULT, got %s", fs);
		}
	}
	uint32_t count1 = kvmrt_slot_count(fk_rt);
	if (count1 != count0 + gained)
		fk_fail(st, "%u slots appeared, %u of them for the blocks the access touched", count1 - count0, gained);
	fk_check_blocks(st, bf, bl);
	if (gained && fk_each)
		fk_check_slots(st);
}

static void fk_host(struct fk_state *st, bool map, unsigned page, unsigned n)
{
	if (page + n > FK_PAGES)
		n = FK_PAGES - page;
	snprintf(st->last, sizeof(st->last), "host %s pages %u..+%u", map ? "map" : "unmap", page, n);
	if (st->trace)
		fprintf(st->trace, "# host %s 0x%llx len 0x%x (pages %u..+%u)\n", map ? "map" : "unmap",
			(unsigned long long)(fk_base + (uint64_t)page * 4096), n * 4096, page, n);
	for (unsigned i = page; i < page + n; i++) {
		if (!map)
			fk_unmap_page(i);
		else if (!fk_mapped[i] && fk_map_page(i))
			fk_fail(st, "cannot map arena page %u again", i);
	}
	if (fk_each)
		fk_check_slots(st);
}

static void fk_trace_header(FILE *t)
{
	uint64_t lo = fk_blk[0].va, hi = fk_blk[fk_nblk - 1].va + fk_blk[fk_nblk - 1].len;

	fprintf(t, "# fuzz_kvm input: arena 0x%llx len 0x%llx (pages 0..%llu), fault blocks of 2 MiB;\n"
		"# regions: the arena's runs of one kind (r-x is ro: the engine maps it rx), outside its blocks excluded\n",
		(unsigned long long)fk_base, (unsigned long long)FK_LEN, (unsigned long long)FK_PAGES - 1);
	fprintf(t, "region 0x0 0x%llx excluded\n", (unsigned long long)lo);
	for (unsigned i = 0, j; i < FK_PAGES; i = j) {
		for (j = i + 1; j < FK_PAGES && fk_kind[j] == fk_kind[i]; j++)
			;
		fprintf(t, "region 0x%llx 0x%x%s   # pages %u..%u %s\n", (unsigned long long)(fk_base + (uint64_t)i * 4096),
			(j - i) * 4096, fk_kind[i] == FK_RW ? "" : " ro", i, j - 1, fk_kind_name(i));
	}
	fprintf(t, "region 0x%llx 0x%llx excluded\n", (unsigned long long)hi,
		(unsigned long long)((1ull << 47) - hi));
	fprintf(t, "layout block=0x%llx\n", (unsigned long long)FK_BLOCK);
}

static const unsigned fk_sizes[] = { 1, 2, 4, 8, 16, 32, 64 };

/* Back to the checkpoint at the end of the input that left the state (so
 * that nothing the next input runs depends on this one: AFL++ counts the
 * edges of a clean-up at the start of an input against that input, and a
 * clean-up that depends on its predecessor made inputs unstable), and the
 * rollback verified here, so that a rollback bug fails on the input that
 * triggers it and its crash file reproduces alone: every arena page mapped
 * again, the slots of this input deleted, the tables over the arena empty
 * again (against an empty shadow), the slot count and the pool's used
 * pages those of the checkpoint. */
static void fk_restore(struct fk_state *st)
{
	char why[400];
	uint32_t deleted;

	snprintf(st->last, sizeof(st->last), "rollback to the checkpoint");
	while (fk_nunmapped)
		if (fk_map_page(fk_unmapped[--fk_nunmapped]))
			fk_fail(st, "cannot restore arena page %u", fk_unmapped[fk_nunmapped]);
	if (kvmrt_rollback(fk_rt, &deleted, why, sizeof(why)))
		fk_fail(st, "kvmrt_rollback: %s", why);
	for (unsigned b = 0; b < fk_nblk; b++)
		fk_blk[b].slotted = false;
	shadow_clear(&fk_shadow);
	if (kvmrt_slot_count(fk_rt) != fk_ckpt_slots || fk_rt->pool.used != fk_ckpt_used)
		fk_fail(st, "after the rollback: %u slots and %u table pages, the checkpoint had %u and %u",
			kvmrt_slot_count(fk_rt), fk_rt->pool.used, fk_ckpt_slots, fk_ckpt_used);
	fk_check_model(st);
	fk_check_blocks(st, 0, fk_nblk - 1);
}

int fuzz_one(const uint8_t *data, size_t size, FILE *trace)
{
	struct fuzz_in in = { data, size };
	struct fk_state st = { .trace = trace };

	/* Every input from the same state: the previous one rolled back at
	 * its end (fk_restore). Each vCPU reloads its registers and CR3 (so
	 * its TLB) before this input's first call: always the same path, and
	 * nothing cached from the previous input. */
	snprintf(st.last, sizeof(st.last), "start");
	if (fk_nunmapped || kvmrt_slot_count(fk_rt) != fk_ckpt_slots)
		fk_fail(&st, "the previous input left %u pages unmapped and %u slots (checkpoint %u)", fk_nunmapped,
			kvmrt_slot_count(fk_rt), fk_ckpt_slots);
	for (unsigned i = 0; i < fk_rt->nvcpus; i++)
		fk_rt->vcpus[i].dirty = true;
	if (trace)
		fk_trace_header(trace);

	unsigned n = fuzz_u8(&in) % (FK_MAX_UNMAP0 + 1), accesses = 0, host = 0;
	for (unsigned i = 0; i < n; i++)
		fk_host(&st, false, fuzz_u16(&in) % FK_PAGES, 1);
	for (st.op = 0; in.left && st.op < FK_MAX_OPS; st.op++) {
		uint8_t opb = fuzz_u8(&in), op = (opb & 0x7f) % 3;
		if (op == 0) {
			enum fk_mode mode = (enum fk_mode)(fuzz_u8(&in) % 3);
			uint8_t sel = fuzz_u8(&in) % 8;
			uint16_t pg = fuzz_u16(&in);
			/* bit 7: the page is the first arena page of a fault
			 * block (block and region edges), else any page */
			unsigned page = opb & 0x80 ? fk_blk[pg % fk_nblk].first : pg % FK_PAGES;
			int delta = (int8_t)fuzz_u8(&in);
			uint8_t seed = fuzz_u8(&in);
			bool rep = sel >= 6 && mode != FK_EXEC;
			unsigned sz = mode == FK_EXEC ? 1u : sel < 6 ? fk_sizes[sel] : sel == 6 ? 64u : 1u + seed % 64u;
			int64_t off = (int64_t)page * 4096 + delta;
			if (off < 0)
				off = 0;
			if (off > (int64_t)(FK_LEN - sz))
				off = (int64_t)(FK_LEN - sz);
			if (accesses++ == FK_MAX_ACCESS)
				break;
			fk_access(&st, mode, sz, rep, fk_base + (uint64_t)off, seed);
		} else {
			unsigned page = fuzz_u16(&in) % FK_PAGES, cnt = 1 + fuzz_u8(&in) % 4;
			if (host++ == FK_MAX_HOST)
				break;
			fk_host(&st, op == 2, page, cnt);
		}
	}
	/* End: the model against the engine for every block, the whole arena
	 * against the shadow, every slot invariant. */
	snprintf(st.last, sizeof(st.last), "end of input");
	fk_check_model(&st);
	fk_check_blocks(&st, 0, fk_nblk - 1);
	fk_check_slots(&st);
	if (trace)
		fprintf(trace, "check\n");
	fk_restore(&st);
	return 0;
}
