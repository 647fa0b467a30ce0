/* The vCPU layer alone, without the engine: hand-built identity tables
 * (PA = VA, 1 GiB user leaves, slots of 1 GiB added on #PF). Checks that
 * long mode, CPL3 entry, the #PF stub round trip, SSE/AVX/xsave at CPL3,
 * and the fault records (host-unmapped, syscall, #UD, #GP) work.
 * Debug: run it directly; each check prints the values it compared. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../guest.h"
#include "../vcpu.h"
#include "../../core/tests/t.h"

#define GIB (1ull << 30)

struct ident {
	struct vm *vm;
	uint64_t *pages;     /* table pages, PA = VA */
	unsigned used, cap;
	uint64_t *pml4;
	uint32_t next_slot;
	unsigned faults;
	uint64_t slotted[512];   /* GiB index -> bit per PML4 slot mod 64 (test-sized) */
};

static uint64_t *ident_page(struct ident *m)
{
	if (m->used == m->cap)
		return NULL;
	uint64_t *p = m->pages + 512 * m->used++;
	memset(p, 0, 4096);
	return p;
}

static bool host_mapped(uint64_t va)
{
	unsigned char vec;
	return mincore((void *)(uintptr_t)(va & ~4095ull), 4096, &vec) == 0;
}

/* Table below *e (allocated on first use). */
static uint64_t *ident_next(struct ident *m, uint64_t *e)
{
	if (!(*e & 1)) {
		uint64_t *t = ident_page(m);
		if (!t)
			return NULL;
		*e = (uint64_t)(uintptr_t)t | 7;
	}
	return (uint64_t *)(uintptr_t)(*e & ~4095ull);
}

/* A 1 GiB slot for the GiB holding va, and a 2 MiB leaf for va (PVM's
 * CPUID has no PDPE1GB: a 1 GiB leaf would be a reserved-bit fault). */
static int ident_map(struct ident *m, uint64_t va)
{
	uint64_t base = va & ~(GIB - 1);
	uint64_t *pdpt = ident_next(m, &m->pml4[(va >> 39) & 511]);
	uint64_t *pd = pdpt ? ident_next(m, &pdpt[(va >> 30) & 511]) : NULL;
	if (!pd)
		return -ENOMEM;
	uint64_t *e = &pd[(va >> 21) & 511];
	if (*e & 1)
		return 0;
	if (!(m->slotted[(va >> 30) & 511] & (1ull << ((va >> 39) & 63)))) {
		int err = kvm_set_region(m->vm->fd, m->next_slot++, base, GIB, base, false);
		if (getenv("TV_DEBUG"))
			fprintf(stderr, "slot %u base 0x%llx err %d\n", m->next_slot - 1, (unsigned long long)base, err);
		if (err && err != -EEXIST)
			return err;
		m->slotted[(va >> 30) & 511] |= 1ull << ((va >> 39) & 63);
	}
	*e = (va & ~((1ull << 21) - 1)) | 0x87;   /* P RW US PS */
	return 0;
}

static int ident_pf(void *ctx, struct vcpu *v, uint64_t cr2, uint64_t err, uint64_t rip, struct kvmrt_fault *f)
{
	struct ident *m = ctx;
	(void)v;
	m->faults++;
	if ((err & 1) || !host_mapped(cr2)) {
		vcpu_fault_set(f, KVMRT_PAGE_FAULT, "#PF at 0x%llx err 0x%llx rip 0x%llx",
			       (unsigned long long)cr2, (unsigned long long)err, (unsigned long long)rip);
		return -EFAULT;
	}
	int e = ident_map(m, cr2);
	if (e) {
		vcpu_fault_set(f, KVMRT_HOST_ERROR, "ident_map(0x%llx): %d", (unsigned long long)cr2, e);
		return e;
	}
	return 0;
}

static const struct vm_ops ident_ops = { .page_fault = ident_pf };

/* ---- guest functions --------------------------------------------------- */

static uint64_t g_add1(uint64_t x) { return x + 1; }

static uint64_t g_sum(uint64_t p)
{
	volatile uint64_t *a = (volatile uint64_t *)(uintptr_t)p;
	uint64_t s = 0;
	for (int i = 0; i < 1024; i++) {
		a[i * 512] = (uint64_t)i;
		s += a[i * 512];
	}
	return s;
}

static uint64_t g_load(uint64_t p) { return *(volatile uint64_t *)(uintptr_t)p; }

static uint64_t g_avx(uint64_t p)
{
	uint64_t *a = (uint64_t *)(uintptr_t)p;
	__asm__ volatile("vmovdqu (%0), %%ymm0\n\tvpaddq %%ymm0, %%ymm0, %%ymm0\n\tvmovdqu %%ymm0, 32(%0)"
			 :: "r"(a) : "xmm0", "memory");
	return a[4] + a[5] + a[6] + a[7];
}

static uint64_t g_xsave(uint64_t p)
{
	uint8_t *area = (uint8_t *)(uintptr_t)p;
	memset(area, 0, 4096);
	__asm__ volatile("xsave64 (%0)" :: "r"(area), "a"(7), "d"(0) : "memory");
	uint64_t bv;
	memcpy(&bv, area + 512, 8);   /* XSTATE_BV */
	return bv | 0x100;
}

static uint64_t g_syscall(uint64_t nr)
{
	uint64_t r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(nr) : "rcx", "r11", "memory");
	return r;
}

static uint64_t g_ud2(uint64_t x) { (void)x; __asm__ volatile("ud2"); return 0; }

static uint64_t g_cli(uint64_t x) { (void)x; __asm__ volatile("cli"); return 0; }

static uint64_t g_tls(uint64_t x)
{
	static __thread uint64_t tv = 42;
	return tv + x;
}

int main(void)
{
	struct vm vm;
	struct vcpu v;
	struct ident m = { 0 };
	struct kvmrt_fault f;
	const char *why = "";
	uint64_t ret = 0;
	int err;

	err = vm_create(&vm, 3, 1 << 20, &why);
	if (err) {
		t_skip("kvm: %s (%s)", why, strerror(-err));
		return t_exit();
	}
	printf("backend: %s, xcr0 0x%llx\n", kvm_backend_name(vm.backend), (unsigned long long)vm.xcr0);
	m.vm = &vm;
	m.cap = 64;
	m.pages = mmap(NULL, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	T_CHECK(m.pages != MAP_FAILED, "mmap");
	m.pml4 = ident_page(&m);
	vm.cr3 = (uint64_t)(uintptr_t)m.pml4;
	vm.ops = &ident_ops;
	vm.ctx = &m;
	/* Tables and the IDT must be slotted before the CPU walks them. */
	T_EQ(ident_map(&m, (uint64_t)(uintptr_t)m.pages), 0);
	T_EQ(ident_map(&m, (uint64_t)(uintptr_t)vm.idt), 0);

	err = vcpu_create(&vm, &v, 0, &why);
	if (!T_CHECK(err == 0, "vcpu_create: %s: %s", why, strerror(-err)))
		return t_exit();
	T_EQ(ident_map(&m, (uint64_t)(uintptr_t)v.area), 0);
	T_EQ(ident_map(&m, (uint64_t)(uintptr_t)kvmrt_guest_loop), 0);

	err = vcpu_call(&v, (uint64_t)(uintptr_t)g_add1, 41, &ret, &f);
	T_CHECK(err == 0 && ret == 42, "add1: err %d ret %llu: %s", err, (unsigned long long)ret, f.why);

	uint64_t *big = mmap(NULL, 1024 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	err = vcpu_call(&v, (uint64_t)(uintptr_t)g_sum, (uint64_t)(uintptr_t)big, &ret, &f);
	T_CHECK(err == 0 && ret == 1023 * 1024 / 2, "sum: err %d ret %llu: %s", err, (unsigned long long)ret, f.why);
	T_EQ(big[512 * 7], 7);

	uint64_t *a = aligned_alloc(64, 4096);
	for (int i = 0; i < 4; i++)
		a[i] = (uint64_t)i + 1;
	err = vcpu_call(&v, (uint64_t)(uintptr_t)g_avx, (uint64_t)(uintptr_t)a, &ret, &f);
	T_CHECK(err == 0 && ret == 20, "avx: err %d ret %llu: %s", err, (unsigned long long)ret, f.why);

	uint8_t *xs = aligned_alloc(64, 4096);
	err = vcpu_call(&v, (uint64_t)(uintptr_t)g_xsave, (uint64_t)(uintptr_t)xs, &ret, &f);
	T_CHECK(err == 0 && (ret & 0x100), "xsave: err %d ret 0x%llx: %s", err, (unsigned long long)ret, f.why);

	err = vcpu_call(&v, (uint64_t)(uintptr_t)g_tls, 1, &ret, &f);
	T_CHECK(err == 0 && ret == 43, "tls: err %d ret %llu: %s", err, (unsigned long long)ret, f.why);

	/* A host-unmapped page in a GiB nothing else lives in: a #PF, then a
	 * record. (Inside a mapped leaf it would be KVM_RUN EFAULT instead.) */
	uint8_t *hole = (uint8_t *)0x100000000000ull;
	unsigned char vec;
	T_CHECK(mincore(hole, 4096, &vec) < 0, "0x%p is mapped", (void *)hole);
	err = vcpu_call(&v, (uint64_t)(uintptr_t)g_load, (uint64_t)(uintptr_t)hole + 8, &ret, &f);
	T_CHECK(err == -EFAULT && f.reason == KVMRT_PAGE_FAULT && f.addr == (uint64_t)(uintptr_t)hole + 8 &&
		f.error_code == 4, "unmapped: err %d reason %d addr 0x%llx ec 0x%llx: %s", err, f.reason,
		(unsigned long long)f.addr, (unsigned long long)f.error_code, f.why);

	err = vcpu_call(&v, (uint64_t)(uintptr_t)g_add1, 1, &ret, &f);
	T_CHECK(err == 0 && ret == 2, "after fault: err %d ret %llu: %s", err, (unsigned long long)ret, f.why);

	err = vcpu_call(&v, (uint64_t)(uintptr_t)g_syscall, 39, &ret, &f);
	T_CHECK(err == -EFAULT && f.reason == KVMRT_SYSCALL && f.addr == 39, "syscall: err %d reason %d: %s",
		err, f.reason, f.why);

	err = vcpu_call(&v, (uint64_t)(uintptr_t)g_ud2, 0, &ret, &f);
	T_CHECK(err == -EFAULT && f.reason == KVMRT_EXCEPTION && f.vector == 6, "ud2: err %d vector %d: %s",
		err, f.vector, f.why);

	err = vcpu_call(&v, (uint64_t)(uintptr_t)g_cli, 0, &ret, &f);
	T_CHECK(err == -EFAULT && f.reason == KVMRT_EXCEPTION && f.vector == 13, "cli: err %d vector %d: %s",
		err, f.vector, f.why);

	err = vcpu_call(&v, (uint64_t)(uintptr_t)g_add1, 99, &ret, &f);
	T_CHECK(err == 0 && ret == 100, "final: err %d ret %llu: %s", err, (unsigned long long)ret, f.why);
	printf("exits: pf=%llu io=%llu other=%llu, faults serviced %u, slots %u\n",
	       (unsigned long long)v.n.pf, (unsigned long long)v.n.io, (unsigned long long)v.n.other,
	       m.faults, m.next_slot);
	vcpu_destroy(&v);
	vm_destroy(&vm);
	return t_exit();
}
