/* kvmrt-bench: medians, in one run, of
 *   - a bare exit round trip (guest `out` -> host -> guest),
 *   - an MMIO exit round trip (legacy: present entry, no slot; served from
 *     our memory, slot deliberately not added so every access exits),
 *   - the #PF path: fault -> new slot + entries -> access done,
 * each with its ratio to the bare exit, plus the slot ioctl's own cost.
 * Fault blocks are 2 MiB so that every #PF sample gets a block of its own.
 * Usage: kvmrt-bench [--cpl 0|3] [--samples N]. Figures, not a test:
 * compare ratios within one run (the machine is noisy). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvmrt_internal.h"

#define PER_SAMPLE 8     /* events per guest call; the call's own exit is subtracted */
#define BLOCK (2ull << 20)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double median(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2;
}

static uint64_t g_nops(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		kvmrt_guest_nop_exit();
	return 0;
}

/* Loads one word from each of PER_SAMPLE blocks starting at a: block k at
 * a + k * BLOCK + 4096 * (k + 1). Addresses are computed, not loaded, so
 * the target loads are the only memory accesses besides the stack. */
static uint64_t g_loads(uint64_t a)
{
	uint64_t s = 0;

	for (uint64_t k = 0; k < PER_SAMPLE; k++)
		s += *(volatile const uint64_t *)(uintptr_t)(a + k * BLOCK + 4096 * (k + 1));
	return s;
}

static struct kvmrt *bench_open(bool legacy, int cpl)
{
	struct kvmrt_config cfg = { .legacy = legacy, .ring0 = cpl == 0, .block_size = BLOCK, .quiet = true };
	struct kvmrt *rt;
	char why[400];
	int err = kvmrt_open(&rt, &cfg, why, sizeof(why));

	if (err) {
		printf("SKIP kvm: %s\n", why);
		exit(err == -ENOENT || err == -EACCES || err == -EPERM ? 77 : 1);
	}
	return rt;
}

static int call(struct kvmrt *rt, kvmrt_fn fn, uint64_t arg)
{
	struct kvmrt_fault f;
	uint64_t r;
	int err = kvmrt_call(rt, fn, arg, &r, &f);

	if (err) {
		char buf[400];
		fprintf(stderr, "kvmrt-bench: guest call failed: %s\n", kvmrt_fault_str(&f, buf, sizeof(buf)));
		exit(1);
	}
	return 0;
}

/* Per-event times of `samples` calls of fn (minus one bare exit each), and
 * the slot ioctls' time per event, both as medians over samples. */
static double bench_events(struct kvmrt *rt, kvmrt_fn fn, uint64_t (*arg)(void *ctx, size_t i), void *ctx,
			   size_t samples, double bare, double *ioctl)
{
	uint64_t *t = calloc(samples, sizeof(*t)), *io = calloc(samples, sizeof(*io));

	for (size_t i = 0; i < samples; i++) {
		uint64_t a = arg(ctx, i), ns0 = rt->slot_ns;
		uint64_t t0 = now_ns();
		call(rt, fn, a);
		double per = ((double)(now_ns() - t0) - bare) / PER_SAMPLE;
		t[i] = per > 0 ? (uint64_t)per : 0;
		io[i] = (rt->slot_ns - ns0) / PER_SAMPLE;
	}
	double m = median(t, samples);
	if (ioctl)
		*ioctl = median(io, samples);
	free(t);
	free(io);
	return m;
}

/* PER_SAMPLE fresh pages, one per 2 MiB block, for each sample. */
struct fresh {
	uint8_t *base;
};

static uint64_t fresh_arg(void *ctx, size_t i)
{
	struct fresh *f = ctx;
	return (uint64_t)(uintptr_t)(f->base + i * PER_SAMPLE * BLOCK);
}

/* Pages in 2 MiB blocks nothing else uses, above the break (inside the
 * window kvmrt keeps), each touched once by the host. */
static int fresh_map(struct fresh *f, size_t samples)
{
	size_t n = samples * PER_SAMPLE;
	uint64_t at = ((uint64_t)(uintptr_t)sbrk(0) + (64ull << 30)) & ~(BLOCK - 1);

	f->base = mmap((void *)(uintptr_t)at, n * BLOCK, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (f->base == MAP_FAILED)
		return -1;
	for (size_t i = 0; i < samples; i++)
		for (uint64_t k = 0; k < PER_SAMPLE; k++)
			*(uint64_t *)(uintptr_t)(fresh_arg(f, i) + k * BLOCK + 4096 * (k + 1)) = 1;
	return 0;
}

static void fresh_unmap(struct fresh *f, size_t samples)
{
	munmap(f->base, samples * PER_SAMPLE * BLOCK);
}

/* The same addresses every time (MMIO: no slot is ever added). */
static uint64_t same_arg(void *ctx, size_t i)
{
	(void)i;
	return fresh_arg(ctx, 0);
}

int main(int argc, char **argv)
{
	int cpl = 3;
	size_t samples = 200;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--cpl") && i + 1 < argc)
			cpl = atoi(argv[++i]) == 0 ? 0 : 3;
		else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
			samples = (size_t)strtoul(argv[++i], NULL, 10);
	}
	if (samples < 10)
		samples = 10;

	/* 1. bare exits, lazy runtime. */
	struct kvmrt *rt = bench_open(false, cpl);
	printf("kvmrt-bench: backend %s, CPL%d, fault blocks 2 MiB, %zu samples of %d events\n", kvmrt_backend(rt), cpl,
	       samples, PER_SAMPLE);
	call(rt, g_nops, 1);   /* vCPU created and warm */
	uint64_t *t = calloc(samples, sizeof(*t));
	for (size_t i = 0; i < samples; i++) {
		uint64_t t0 = now_ns();
		call(rt, g_nops, PER_SAMPLE - 1);   /* PER_SAMPLE exits with the return */
		t[i] = (now_ns() - t0) / PER_SAMPLE;
	}
	double bare = median(t, samples);
	free(t);

	/* 3. the #PF path, same runtime: every access a block without a slot. */
	struct fresh f;
	if (fresh_map(&f, samples)) {
		fprintf(stderr, "kvmrt-bench: cannot map %zu fresh blocks\n", samples * PER_SAMPLE);
		return 1;
	}
	double ioctl_ns = 0;
	double pf = bench_events(rt, g_loads, fresh_arg, &f, samples, bare, &ioctl_ns);
	double ioctl_us = ioctl_ns / 1000;
	struct kvmrt_exits e;
	kvmrt_exits(rt, &e);
	unsigned long long pf_exits = (unsigned long long)e.pf;
	kvmrt_close(rt, NULL, 0);
	fresh_unmap(&f, samples);

	/* 2. MMIO exits, legacy runtime that never adds the slot. */
	rt = bench_open(true, cpl);
	if (fresh_map(&f, 1)) {
		fprintf(stderr, "kvmrt-bench: cannot map fresh blocks\n");
		return 1;
	}
	call(rt, g_nops, 1);   /* slots the stack, code and area the normal way */
	kvmrt_exits(rt, &e);
	uint64_t mmio0 = e.mmio;
	rt->mmio_noslot = true;
	double mmio = bench_events(rt, g_loads, same_arg, &f, samples, bare, NULL);
	kvmrt_exits(rt, &e);
	kvmrt_close(rt, NULL, 0);
	fresh_unmap(&f, 1);

	printf("  %-52s %8.1f us  %5.2fx\n", "bare exit round trip", bare / 1000, 1.0);
	printf("  %-52s %8.1f us  %5.2fx  (%llu MMIO exits)\n", "MMIO exit round trip (legacy, served, no slot)",
	       mmio / 1000, mmio / bare, (unsigned long long)(e.mmio - mmio0));
	printf("  %-52s %8.1f us  %5.2fx  (%llu #PF exits)\n", "#PF -> new slot + entries -> access done", pf / 1000,
	       pf / bare, pf_exits);
	printf("  %-52s %8.1f us  %5.2fx\n", "  of which KVM_SET_USER_MEMORY_REGION",
	       ioctl_us, ioctl_us * 1000 / bare);
	printf("  %-52s %8.1f us  %5.2fx\n", "  target: 1 exit + 1 slot ioctl", bare / 1000 + ioctl_us,
	       (bare + ioctl_us * 1000) / bare);
	printf("bench-kvm: pf/bare %.2f mmio/bare %.2f pf/(exit+ioctl) %.2f\n", pf / bare, mmio / bare,
	       pf / (bare + ioctl_us * 1000));
	return 0;
}
