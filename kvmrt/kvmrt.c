/* kvmrt: the engine behind a real VM. The physical map comes from
 * /proc/self/maps, the pool is sized by the bound and lives in guest PA space
 * (its PA is the physical map's translation of its VA, so the CPU can walk
 * it), tables exist only for slotted fault blocks (legacy: for everything),
 * and guest #PFs / MMIO exits add slots on demand. */
#include "kvmrt.h"
#include "kvmrt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "guest.h"
#include "slots_internal.h"

#define PF_P    0x1u
#define PF_W    0x2u
#define PF_U    0x4u
#define PF_RSVD 0x8u
#define PF_I    0x10u

static _Atomic uint64_t kvmrt_generation;

static int kvmrt_fail(char *why, size_t len, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int kvmrt_fail(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* ---- /proc/self/maps -> physical map ----------------------------------- */

/* Reads a whole /proc file into a malloc'd buffer (its size is unknown in
 * advance and it changes as we allocate). */
static int kvmrt_read_file(const char *path, char **text, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 1 << 16, n = 0;
	char *buf = NULL;

	if (fd < 0)
		return -errno;
	for (;;) {
		char *nb = realloc(buf, cap);
		if (!nb) {
			free(buf);
			close(fd);
			return -ENOMEM;
		}
		buf = nb;
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int err = -errno;
			free(buf);
			close(fd);
			return err;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap)
			cap *= 2;
	}
	close(fd);
	*text = buf;
	*len = n;
	return 0;
}

static size_t kvmrt_count_lines(const char *t, size_t n)
{
	size_t lines = 1;

	for (size_t i = 0; i < n; i++)
		lines += t[i] == '\n';
	return lines;
}

/* The guest's PA width: CPUID 0x80000008 as KVM reports it (48 here). */
static unsigned kvmrt_pa_bits(struct vm *vm)
{
	struct kvm_cpuid_entry2 *e = kvm_cpuid_find(vm->cpuid, 0x80000008, 0);
	unsigned bits = e ? (e->eax & 0xff) : 0;

	return bits >= 36 && bits <= 52 ? bits : 48;
}

/* Whether the guest may use 1 GiB leaves: PDPE1GB in the CPUID the vCPUs
 * get. PVM hides it and then faults on a 1 GiB leaf (reserved bit). */
static bool kvmrt_huge_1g(struct vm *vm)
{
	struct kvm_cpuid_entry2 *e = kvm_cpuid_find(vm->cpuid, 0x80000001, 0);

	return e && (e->edx & (1u << 26));
}

#define TRIM_KEEP  (1ull << 40)   /* kept on each side of a mapping */
#define TRIM_ALIGN (1ull << 30)

/* Excludes the middle of every hole wider than 2 * TRIM_KEEP. Without 1 GiB
 * leaves the tables for the whole 128 TiB lower half need 131k pages (513
 * MiB), which legacy mode would build and the checker walk; the process
 * itself lives in a few TiB. New mappings land next to old ones (brk grows
 * up from the heap, mmap grows down from its base), inside the kept
 * windows. Room for n + 1 more regions must follow r[n]. */
static size_t kvmrt_trim_holes(struct region *r, size_t n)
{
	const uint64_t lo = 0x1000, hi = PHYSMAP_VA_END;
	size_t out = n;
	uint64_t prev_end = lo;

	for (size_t i = 0; i <= n; i++) {
		uint64_t next = i < n ? r[i].va : hi;
		if (next > hi)
			next = hi;
		if (next > prev_end && next - prev_end > 2 * TRIM_KEEP + TRIM_ALIGN) {
			uint64_t a = (prev_end + TRIM_KEEP + TRIM_ALIGN - 1) & ~(TRIM_ALIGN - 1);
			uint64_t b = (next - TRIM_KEEP) & ~(TRIM_ALIGN - 1);
			if (prev_end == lo)
				a = lo;   /* nothing below the first mapping ever grows down into it */
			if (b > a)
				r[out++] = (struct region){ .va = a, .len = b - a, .kind = REGION_EXCLUDED };
		}
		if (i < n && r[i].va + r[i].len > prev_end)
			prev_end = r[i].va + r[i].len;
	}
	return out;
}

static int kvmrt_build_physmap(struct kvmrt *rt, char *why, size_t len)
{
	char *text = NULL;
	size_t n = 0, tlen = 0, bad = 0;
	const char *pwhy = NULL;
	int err = kvmrt_read_file("/proc/self/maps", &text, &tlen);

	if (err)
		return kvmrt_fail(why, len, err, "cannot read /proc/self/maps: %s", strerror(-err));
	/* Room for the regions and for the physical regions they cut the
	 * address space into (at most two per host region, plus one). */
	size_t lines = kvmrt_count_lines(text, tlen);
	size_t cap = 2 * lines + 16;   /* the lines, one hole each, the guard */
	rt->host = calloc(cap, sizeof(*rt->host));
	rt->phys = calloc(2 * cap + 1, sizeof(*rt->phys));
	if (!rt->host || !rt->phys) {
		free(text);
		return kvmrt_fail(why, len, -ENOMEM, "out of memory for %zu regions", cap);
	}
	err = physmap_parse_maps(text, tlen, rt->host, lines + 8, &n, &bad);
	free(text);
	if (err)
		return kvmrt_fail(why, len, err, "/proc/self/maps line %zu: %s", bad, strerror(-err));
	if (!rt->cfg.full_va)
		n = kvmrt_trim_holes(rt->host, n);
	rt->nhost = n;
	struct physmap_config pc = { .block_size = rt->cfg.block_size, .pa_bits = kvmrt_pa_bits(&rt->vm) };
	err = physmap_build(&rt->pm, &pc, rt->host, n, rt->host, rt->phys, 2 * cap + 1, &pwhy);
	if (err)
		return kvmrt_fail(why, len, err, "%s", pwhy ? pwhy : "physmap_build failed");
	return 0;
}

/* ---- pool and tables --------------------------------------------------- */

/* Pools up to this size are faulted in at init (pool_prefault). */
#define KVMRT_PREFAULT_BYTES (64u << 20)

/* The pool is one anonymous NORESERVE mapping: its pages cost memory only
 * once taken (or at init, for a pool of at most KVMRT_PREFAULT_BYTES). Its PA is the physical map's translation of its VA, which is
 * linear because the mapping sits in one physical region (checked). */
static int kvmrt_make_pool(struct kvmrt *rt, char *why, size_t len)
{
	uint64_t pages, pa, pa_last;
	int err = physmap_bound(&rt->pm, rt->cfg.legacy, 4, rt->huge_1g, &pages);

	if (err)
		return kvmrt_fail(why, len, err, "physmap_bound: %s", strerror(-err));
	if (pages > UINT32_MAX)
		return kvmrt_fail(why, len, -E2BIG, "bound of %llu table pages is too large",
				  (unsigned long long)pages);
	rt->bound = pages;
	rt->pool_len = (pool_bytes((uint32_t)pages) + 4095) & ~(size_t)4095;
	void *mem = mmap(NULL, rt->pool_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return kvmrt_fail(why, len, -errno, "cannot reserve %zu bytes for %llu table pages: %s",
				  rt->pool_len, (unsigned long long)pages, strerror(errno));
	rt->pool_mem = mem;
	uint64_t va = (uint64_t)(uintptr_t)mem;
	if (physmap_translate(&rt->pm, va, &pa) || physmap_translate(&rt->pm, va + rt->pool_len - 1, &pa_last) ||
	    pa_last - pa != rt->pool_len - 1)
		return kvmrt_fail(why, len, -EFAULT, "pool at va 0x%llx len 0x%zx is not one linear range of the physical map",
				  (unsigned long long)va, rt->pool_len);
	err = pool_init_zeroed(&rt->pool, mem, (uint32_t)pages, pa); /* fresh mmap: zero, left untouched */
	if (err)
		return kvmrt_fail(why, len, err, "pool_init_zeroed(%llu pages at pa 0x%llx): %s",
				  (unsigned long long)pages, (unsigned long long)pa, strerror(-err));
	/* A small pool is faulted in now, so that no slot fault pays the
	 * kernel's first touch of a table page (14-19 us each in a PVM guest,
	 * docs/bench-pt.md); a large one keeps costing only what is used. */
	if (rt->pool_len <= KVMRT_PREFAULT_BYTES && (err = pool_prefault(&rt->pool)))
		return kvmrt_fail(why, len, err, "pool_prefault(%zu bytes): %s", rt->pool_len, strerror(-err));
	rt->pool_pa = pa;
	/* Live tables: freed table pages wait for every vCPU's flush. In
	 * add-only use (faults) that still fits the bound (docs/live-tables.md). */
	err = pool_defer(&rt->pool);
	if (err)
		return kvmrt_fail(why, len, err, "pool_defer: %s", strerror(-err));
	err = pt_init(&rt->pt, &rt->pool, 4, rt->huge_1g);
	if (err)
		return kvmrt_fail(why, len, err, "pt_init: %s", strerror(-err));
	rt->pt_ready = true;
	return 0;
}

/* The slot callback: one KVM memory slot per fault block. */
static int kvmrt_set_slot(void *ctx, uint32_t id, uint64_t pa, uint64_t len, uint64_t va, bool readonly)
{
	struct kvmrt *rt = ctx;
	struct timespec t0, t1;

	/* clock_gettime is async-signal-safe (vDSO): fine on the fault path. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int err = kvm_set_region(rt->vm.fd, id, pa, len, va, readonly && rt->readonly_slots);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!err) {
		rt->slot_ioctls++;
		rt->slot_ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec));
	}
	return err;
}

/* ---- checks ------------------------------------------------------------ */

/* Runs the checker; on a broken invariant remembers it, says so on stderr
 * and returns -EFAULT. Not from inside the slot callback (it takes the slot
 * lock). */
static int kvmrt_check_now(struct kvmrt *rt, const char *when, uint64_t va)
{
	char buf[256];
	const char *bad = check_slots(&rt->slots, buf, sizeof(buf));

	rt->checks++;
	if (!bad)
		return 0;
	if (!atomic_exchange(&rt->check_failed, true)) {
		snprintf(rt->check_why, sizeof(rt->check_why), "%s 0x%llx: %s", when, (unsigned long long)va, bad);
		fprintf(stderr, "kvmrt: CHECK FAILED %s\n", rt->check_why);
	}
	return -EFAULT;
}

/* ---- fault service ----------------------------------------------------- */

/* Is the page holding va mapped in this process? mincore fails with ENOMEM
 * on an unmapped page; a syscall, no allocation, async-signal-safe. */
bool kvmrt_host_mapped(uint64_t va, uint64_t len)
{
	uint64_t first = va & ~4095ull, last = (va + len - 1) & ~4095ull;
	unsigned char vec;

	for (uint64_t p = first;; p += 4096) {
		if (mincore((void *)(uintptr_t)p, 4096, &vec) != 0)
			return false;
		if (p == last)
			return true;
	}
}

static const char *kvmrt_pf_kind(uint64_t err)
{
	if (err & PF_RSVD)
		return "reserved bit set in a table entry";
	if (!(err & PF_P))
		return "not present";
	if (err & PF_I)
		return "instruction fetch from a non-executable page";
	if (err & PF_W)
		return "write to a read-only page";
	if (err & PF_U)
		return "user access to a supervisor page";
	return "protection violation";
}

int kvmrt_service_fault(struct kvmrt *rt, uint64_t va, uint64_t err, struct slots_result *res)
{
	if (err & (PF_P | PF_RSVD))
		return -EACCES;
	if (!kvmrt_host_mapped(va, 1))
		return -EFAULT;
	return slots_fault(&rt->slots, va, res);
}

static int kvmrt_on_page_fault(void *ctx, struct vcpu *v, uint64_t cr2, uint64_t ec, uint64_t rip,
			       struct kvmrt_fault *f)
{
	struct kvmrt *rt = ctx;
	struct slots_result res;
	int err;

	(void)v;
	err = kvmrt_service_fault(rt, cr2, ec, &res);
	if (err) {
		f->err = err;
		vcpu_fault_set(f, KVMRT_PAGE_FAULT, "#PF at 0x%llx error code 0x%llx (%s) rip 0x%llx: %s (%d)",
			       (unsigned long long)cr2, (unsigned long long)ec, kvmrt_pf_kind(ec), (unsigned long long)rip,
			       err == -EACCES ? "not a missing slot, so not serviced"
			       : err == -EFAULT && !kvmrt_host_mapped(cr2, 1) ? "host memory is not mapped"
			       : err == -EFAULT ? "address outside the physical map (excluded)"
			       : err == -ENOSPC ? "slot table full" : err == -ENOMEM ? "table pool exhausted (bound broken)"
			       : "slot engine failed", err);
		if (err != -EFAULT && err != -EACCES)
			fprintf(stderr, "kvmrt: %s\n", f->why);
		return -EFAULT;
	}
	/* A block publishes its slot only after its entries are written, so
	 * "already" with no entry means kvmrt_unmap removed the page: the
	 * guest must not retry forever. (The walk is lock-free: pages freed
	 * meanwhile are retired, not reused.) */
	struct pt_leaf leaf;
	if (res.outcome == SLOTS_ALREADY && pt_lookup(&rt->pt, cr2, &leaf) == -ENOENT) {
		f->err = -EFAULT;
		vcpu_fault_set(f, KVMRT_PAGE_FAULT, "#PF at 0x%llx error code 0x%llx (%s) rip 0x%llx: the page was removed "
			       "from the guest (kvmrt_unmap)", (unsigned long long)cr2, (unsigned long long)ec,
			       kvmrt_pf_kind(ec), (unsigned long long)rip);
		return -EFAULT;
	}
	if (res.outcome == SLOTS_NEW)
		rt->new_slots_pf++;
	if (rt->check && res.outcome != SLOTS_ALREADY && kvmrt_check_now(rt, "after #PF mapping", cr2)) {
		vcpu_fault_set(f, KVMRT_HOST_ERROR, "check failed: %s", rt->check_why);
		return -EFAULT;
	}
	return 0;
}

/* Copies between guest data and our own memory without risking SIGSEGV: a
 * page may be PROT_NONE or read-only behind a mapping that exists. */
static bool kvmrt_copy(uint64_t va, uint8_t *data, uint32_t len, bool to_memory)
{
	struct iovec local = { data, len }, remote = { (void *)(uintptr_t)va, len };
	ssize_t n = to_memory ? process_vm_writev(getpid(), &local, 1, &remote, 1, 0)
			      : process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	return n == (ssize_t)len;
}

/* Legacy: the entry is present but the block has no slot, so KVM emulated
 * the access and asks us. Serve it from our memory, then add the slot so
 * the next access runs natively. */
static int kvmrt_on_mmio(void *ctx, struct vcpu *v, uint64_t gpa, uint8_t *data, uint32_t len, bool is_write,
			 struct kvmrt_fault *f)
{
	struct kvmrt *rt = ctx;
	struct phys_block b;
	struct slots_result res;

	(void)v;
	f->addr = gpa;
	if (physmap_fault_block(&rt->pm, gpa, &b)) {
		vcpu_fault_set(f, KVMRT_MMIO, "MMIO exit at gpa 0x%llx outside the physical map", (unsigned long long)gpa);
		return -EFAULT;
	}
	uint64_t va = b.va + (gpa - b.pa);
	f->addr = va;
	if (!kvmrt_host_mapped(va, len) || !kvmrt_copy(va, data, len, is_write)) {
		vcpu_fault_set(f, KVMRT_MMIO, "MMIO %s of %u bytes at va 0x%llx (gpa 0x%llx): host memory %s",
			       is_write ? "write" : "read", len, (unsigned long long)va, (unsigned long long)gpa,
			       kvmrt_host_mapped(va, len) ? "not accessible" : "not mapped");
		return -EFAULT;
	}
	f->addr = 0;   /* served: leave no trace in a later record */
	if (rt->mmio_noslot)
		return 0;
	int err = slots_map_physical(&rt->slots, b.pa, 1, &res);
	if (err) {
		f->err = err;
		vcpu_fault_set(f, KVMRT_HOST_ERROR, "adding the slot for gpa 0x%llx after an MMIO exit: %s",
			       (unsigned long long)b.pa, strerror(-err));
		return -EFAULT;
	}
	if (res.outcome == SLOTS_NEW)
		rt->new_slots_mmio++;
	if (rt->check && res.outcome != SLOTS_ALREADY && kvmrt_check_now(rt, "after MMIO slot", va)) {
		vcpu_fault_set(f, KVMRT_HOST_ERROR, "check failed: %s", rt->check_why);
		return -EFAULT;
	}
	return 0;
}

static bool kvmrt_gpa_to_va(void *ctx, uint64_t gpa, uint64_t *va)
{
	struct kvmrt *rt = ctx;
	struct phys_block b;

	if (physmap_fault_block(&rt->pm, gpa, &b))
		return false;
	*va = b.va + (gpa - b.pa);
	return true;
}

static int kvmrt_on_port(void *ctx, struct vcpu *v, uint16_t port, uint32_t value, struct kvmrt_fault *f)
{
	struct kvmrt *rt = ctx;

	if (rt->port_hook)
		return rt->port_hook(rt->port_ctx, v, port, value, f);
	vcpu_fault_set(f, KVMRT_HOST_ERROR, "out to port 0x%x with no handler", port);
	return -EFAULT;
}

/* ---- live tables: flush points, shootdown, unmap, protect ---------------
 * docs/live-tables.md has the rules. The pool retires the table pages the
 * engine frees (pool_defer at open); a vCPU passes a flush point before it
 * runs guest code whenever the pool's epoch moved since its last one; a
 * shootdown advances the epoch, kicks the vCPUs that are in, waits, and
 * reclaims. */

static void kvmrt_kick_handler(int sig)
{
	(void)sig; /* only to make KVM_RUN return EINTR */
}

/* The flush point (vm_ops.enter): on the vCPU's thread, before KVM_RUN. */
static int kvmrt_on_enter(void *ctx, struct vcpu *v)
{
	struct kvmrt *rt = ctx;
	struct sd_cpu *c = &rt->sd[v->id];
	uint64_t epoch;

	__atomic_store_n(&rt->runner[v->id], pthread_self(), __ATOMIC_SEQ_CST);
	if (!sd_enter(c, &rt->pool, &epoch))
		return 0;
	/* VMX/SVM: this vCPU's own flush. PVM: the shootdown already dropped
	 * every shadow page after the epoch began (kvmrt_flush_all), and KVM
	 * reloads this vCPU's roots, flushing, before it re-enters. */
	if (rt->vm.backend != KVM_BACKEND_PVM) {
		int err = vcpu_flush_tlb(v);
		if (err)
			return err;
	}
	sd_flushed(c, epoch);
	return 0;
}

static void kvmrt_on_leave(void *ctx, struct vcpu *v)
{
	struct kvmrt *rt = ctx;

	sd_leave(&rt->sd[v->id]);
	/* A kick in flight targets this thread: it must not exit under it. */
	while (atomic_load(&rt->kicking[v->id]))
		sched_yield();
}

static bool kvmrt_kick(void *ctx, unsigned i)
{
	struct kvmrt *rt = ctx;
	struct vcpu *v = &rt->vcpus[i];
	bool other = true;

	atomic_store(&rt->kicking[i], 1);
	if (atomic_load(&rt->sd[i].state) == SD_IN) {
		pthread_t t = __atomic_load_n(&rt->runner[i], __ATOMIC_SEQ_CST);
		/* Our own vCPU (a call's host code unmapping): between runs. */
		other = !pthread_equal(t, pthread_self());
		if (other) {
			__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
			pthread_kill(t, KVMRT_KICK_SIGNAL);
		}
	}
	atomic_store(&rt->kicking[i], 0);
	return other;
}

/* PVM (shadow paging): KVM never sees our host-side table writes, and a
 * guest TLB flush resyncs only unsync shadow pages (Documentation/virt/kvm/
 * x86/mmu.rst), so the flush that counts is dropping every shadow page of
 * the VM, which deleting a memslot does. */
static void kvmrt_flush_all(void *ctx)
{
	struct kvmrt *rt = ctx;

	int err = vm_zap_shadow(&rt->vm);
	if (err)
		fprintf(stderr, "kvmrt: scratch slot for the shadow-MMU flush failed: %s\n", strerror(-err));
}

uint32_t kvmrt_shootdown(struct kvmrt *rt)
{
	uint64_t kicks = 0;
	sigset_t old;

	pthread_mutex_lock(&rt->shootdown_lock);
	uint64_t epoch = sd_shootdown(rt->sd, atomic_load(&rt->nvcpus), &rt->pool,
				      rt->vm.backend == KVM_BACKEND_PVM ? kvmrt_flush_all : NULL, kvmrt_kick, rt, 1000,
				      &kicks);
	slots_lock(&rt->slots, &old);
	uint32_t n = pool_reclaim(&rt->pool, epoch);
	slots_unlock(&rt->slots, &old);
	rt->shootdowns++;
	rt->reclaimed += n;
	rt->kicks += kicks;
	pthread_mutex_unlock(&rt->shootdown_lock);
	return n;
}

/* One engine operation under the slot lock; -ENOMEM with pages retired:
 * reclaim them (a shootdown) and try once more. protect: va's current leaf
 * (looked up under the lock) is mapped again with opts up to len; *done says
 * how far that got (the leaf's end or len), *lost whether rights went. */
struct kvmrt_op {
	bool unmap;
	uint64_t va, len;
	uint32_t opts;      /* protect */
	uint64_t done;      /* protect: bytes from va handled */
	bool lost;          /* protect: a translation lost rights */
};

static int kvmrt_pt_locked(struct kvmrt *rt, struct kvmrt_op *o)
{
	if (o->unmap)
		return pt_unmap(&rt->pt, o->va, o->len);
	struct pt_leaf leaf;
	if (pt_lookup(&rt->pt, o->va, &leaf)) {
		o->done = 4096;
		return 0;
	}
	uint64_t end = leaf.va + leaf.size - o->va < o->len ? leaf.va + leaf.size : o->va + o->len;
	o->done = end - o->va;
	if (leaf.opts == o->opts)
		return 0;
	o->lost |= (leaf.opts & ~o->opts & (PT_W | PT_X | PT_USER)) != 0;
	return pt_map(&rt->pt, o->va, end - o->va, leaf.pa + (o->va - leaf.va), o->opts);
}

static int kvmrt_pt_op(struct kvmrt *rt, struct kvmrt_op *o)
{
	sigset_t old;
	int err;

	for (int attempt = 0;; attempt++) {
		slots_lock(&rt->slots, &old);
		err = kvmrt_pt_locked(rt, o);
		slots_unlock(&rt->slots, &old);
		if (err != -ENOMEM || attempt || !pool_retired(&rt->pool))
			return err;
		kvmrt_shootdown(rt);
	}
}

static int kvmrt_live_check(struct kvmrt *rt, const char *when, uint64_t va)
{
	return rt->check ? kvmrt_check_now(rt, when, va) : 0;
}

int kvmrt_unmap(struct kvmrt *rt, uint64_t va, uint64_t len)
{
	if (pt_check_range(&rt->pt, va, len, NULL))
		return -EINVAL;
	/* Nothing carried in: the operation then never needs more than the
	 * bound (docs/live-tables.md). */
	if (pool_retired(&rt->pool))
		kvmrt_shootdown(rt);
	struct kvmrt_op o = { .unmap = true, .va = va, .len = len };
	int err = kvmrt_pt_op(rt, &o);
	if (err)
		return err;
	kvmrt_shootdown(rt);
	return kvmrt_live_check(rt, "after kvmrt_unmap", va);
}

int kvmrt_protect(struct kvmrt *rt, uint64_t va, uint64_t len, unsigned perms)
{
	const uint64_t m2 = 1ull << 21;
	uint64_t end = va + len;
	bool downgraded = false;
	int err = 0;

	if (pt_check_range(&rt->pt, va, len, NULL) || !(perms & PT_R) || (perms & ~(uint32_t)(PT_R | PT_W | PT_X)) ||
	    (perms & (PT_W | PT_X)) == (PT_W | PT_X))
		return -EINVAL;
	if (pool_retired(&rt->pool))
		kvmrt_shootdown(rt);
	for (uint64_t cur = va; cur < end && !err;) {
		uint64_t pa;
		struct phys_block b;
		if (physmap_translate(&rt->pm, cur, &pa) || physmap_fault_block(&rt->pm, pa, &b)) {
			cur += 4096; /* excluded: never any entries */
			continue;
		}
		uint64_t chunk_end = b.va + b.len < end ? b.va + b.len : end;
		uint32_t want = slots_opts(&rt->slots, b.kind);
		want &= ~(uint32_t)(PT_W | PT_X) | perms; /* never more than the region allows */
		for (uint64_t p = cur; p < chunk_end && !err;) {
			/* Holes a 2 MiB piece at a time (a lock-free look that
			 * only skips: a block a fault maps meanwhile gets its
			 * region's permissions, as any block faulted later). */
			uint64_t q = (p | (m2 - 1)) + 1 < chunk_end ? (p | (m2 - 1)) + 1 : chunk_end;
			bool empty = false;
			pt_is_empty(&rt->pt, p, q - p, &empty);
			if (empty) {
				p = q;
				continue;
			}
			struct kvmrt_op o = { .va = p, .len = chunk_end - p, .opts = want };
			err = kvmrt_pt_op(rt, &o);
			downgraded |= o.lost;
			p += o.done;
		}
		cur = chunk_end;
	}
	/* Also after an error: whatever was downgraded must be flushed. */
	if (downgraded || pool_retired(&rt->pool))
		kvmrt_shootdown(rt);
	return err ? err : kvmrt_live_check(rt, "after kvmrt_protect", va);
}

static const struct vm_ops kvmrt_ops = {
	.page_fault = kvmrt_on_page_fault,
	.mmio = kvmrt_on_mmio,
	.gpa_to_va = kvmrt_gpa_to_va,
	.port = kvmrt_on_port,
	.enter = kvmrt_on_enter,
	.leave = kvmrt_on_leave,
};

/* Slots and entries for [va, va+len) now: what the CPU touches while
 * delivering an exception (IDT, GDT, TSS, IST stacks, stubs) must never
 * fault. */
int kvmrt_map_range(struct kvmrt *rt, uint64_t va, uint64_t len)
{
	uint64_t pa;

	for (uint64_t p = va & ~4095ull; p < va + len; p += 4096) {
		int err = physmap_translate(&rt->pm, p, &pa);
		if (!err)
			err = slots_map_physical(&rt->slots, pa, 4096, NULL);
		if (err)
			return err;
	}
	return 0;
}

/* ---- open / close ------------------------------------------------------ */

static int kvmrt_map_system(struct kvmrt *rt, char *why, size_t len)
{
	struct { uint64_t va, len; const char *what; } r[] = {
		{ (uint64_t)(uintptr_t)rt->vm.idt, 4096, "IDT" },
		{ (uint64_t)(uintptr_t)kvmrt_guest_text_start,
		  (uint64_t)(kvmrt_guest_text_end - kvmrt_guest_text_start), "guest loop and stubs" },
		{ rt->pool_pa ? (uint64_t)(uintptr_t)rt->pool_mem : 0, rt->pool_len, "table pool" },
	};

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		/* The pool: one call, since it is one linear range. */
		int err = i == 2 ? slots_map_physical(&rt->slots, rt->pool_pa, rt->pool_len, NULL)
				 : kvmrt_map_range(rt, r[i].va, r[i].len);
		if (err)
			return kvmrt_fail(why, len, err, "mapping the %s at va 0x%llx len 0x%llx: %s", r[i].what,
					  (unsigned long long)r[i].va, (unsigned long long)r[i].len, strerror(-err));
	}
	return 0;
}

/* The kick signal gets a handler that does nothing (KVM_RUN then returns
 * EINTR), unless the program installed its own. */
static void kvmrt_install_kick(void)
{
	/* SA_RESTART for the host's own syscalls; KVM_RUN returns EINTR anyway. */
	struct sigaction old, sa = { .sa_handler = kvmrt_kick_handler, .sa_flags = SA_ONSTACK | SA_RESTART };

	sigemptyset(&sa.sa_mask);
	if (sigaction(KVMRT_KICK_SIGNAL, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
		sigaction(KVMRT_KICK_SIGNAL, &sa, NULL);
}

static bool kvmrt_env_check(void)
{
	const char *e = getenv("KVMRT_CHECK");
	return e && *e && strcmp(e, "0") != 0;
}

int kvmrt_open(struct kvmrt **out, const struct kvmrt_config *cfg, char *why, size_t why_len)
{
	struct kvmrt *rt = calloc(1, sizeof(*rt));
	const char *vwhy = "";
	int err;

	*out = NULL;
	if (!rt)
		return kvmrt_fail(why, why_len, -ENOMEM, "out of memory");
	if (cfg)
		rt->cfg = *cfg;
	if (!rt->cfg.max_vcpus)
		rt->cfg.max_vcpus = 16;
	if (!rt->cfg.stack_size)
		rt->cfg.stack_size = 1 << 20;
	rt->check = rt->cfg.check || kvmrt_env_check();
	rt->gen = ++kvmrt_generation;
	pthread_mutex_init(&rt->vcpu_lock, NULL);
	pthread_mutex_init(&rt->shootdown_lock, NULL);
	kvmrt_install_kick();
	err = vm_create(&rt->vm, rt->cfg.ring0 ? 0 : 3, rt->cfg.stack_size, &vwhy);
	if (err) {
		free(rt);
		return kvmrt_fail(why, why_len, err, "%s: %s", vwhy, strerror(-err));
	}
	rt->vm.ops = &kvmrt_ops;
	rt->vm.ctx = rt;
	rt->huge_1g = kvmrt_huge_1g(&rt->vm);
	rt->readonly_slots = kvm_ioctl_val(rt->vm.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0;
	rt->vcpus = calloc(rt->cfg.max_vcpus, sizeof(*rt->vcpus));
	rt->sd = calloc(rt->cfg.max_vcpus, sizeof(*rt->sd));
	rt->runner = calloc(rt->cfg.max_vcpus, sizeof(*rt->runner));
	rt->kicking = calloc(rt->cfg.max_vcpus, sizeof(*rt->kicking));
	if (!rt->vcpus || !rt->sd || !rt->runner || !rt->kicking) {
		err = kvmrt_fail(why, why_len, -ENOMEM, "out of memory");
		goto fail;
	}
	err = kvmrt_build_physmap(rt, why, why_len);
	if (!err)
		err = kvmrt_make_pool(rt, why, why_len);
	if (err)
		goto fail;
	unsigned flags = SLOTS_EXEC | (rt->cfg.ring0 ? 0 : SLOTS_USER) | (rt->cfg.legacy ? SLOTS_LEGACY : 0);
	/* The last slot id is vm_zap_shadow's scratch slot. */
	uint32_t cap = rt->vm.max_slots - 1 < SLOTS_MAX_CAPACITY ? rt->vm.max_slots - 1 : SLOTS_MAX_CAPACITY;
	err = slots_init(&rt->slots, &rt->pt, &rt->pm, cap, flags, kvmrt_set_slot, rt);
	if (err) {
		err = kvmrt_fail(why, why_len, err, "slots_init (capacity %u, %s): %s", cap,
				 rt->cfg.legacy ? "legacy: every table now" : "lazy", strerror(-err));
		goto fail;
	}
	rt->slots_ready = true;
	rt->vm.cr3 = pt_root_pa(&rt->pt);
	err = kvmrt_map_system(rt, why, why_len);
	if (err)
		goto fail;
	if (rt->check && kvmrt_check_now(rt, "after open", 0)) {
		err = kvmrt_fail(why, why_len, -EFAULT, "check failed: %s", rt->check_why);
		goto fail;
	}
	if (!rt->cfg.quiet)
		fprintf(stderr, "kvmrt: backend %s; %s mode, CPL%d, %zu physical regions (%s), fault block 0x%llx, "
			"pool %llu pages (bound), 1 GiB leaves %s\n",
			kvm_backend_name(rt->vm.backend), rt->cfg.legacy ? "legacy" : "lazy", rt->vm.cpl,
			rt->pm.count, rt->cfg.full_va ? "whole lower half" : "holes over 2 TiB trimmed", (unsigned long long)rt->pm.cfg.block_size, (unsigned long long)rt->bound,
			rt->huge_1g ? "on" : "off (CPUID has no PDPE1GB)");
	*out = rt;
	return 0;
fail:
	kvmrt_close(rt, NULL, 0);
	return err;
}

int kvmrt_close(struct kvmrt *rt, char *why, size_t why_len)
{
	int err = 0;

	if (!rt)
		return 0;
	if (rt->check && rt->slots_ready && !rt->check_failed)
		kvmrt_check_now(rt, "at close", 0);
	if (rt->check_failed)
		err = kvmrt_fail(why, why_len, -EFAULT, "%s", rt->check_why);
	for (unsigned i = 0; i < rt->nvcpus; i++)
		vcpu_destroy(&rt->vcpus[i]);
	if (rt->slots_ready)
		slots_destroy(&rt->slots);
	if (rt->pt_ready)
		pt_destroy(&rt->pt);
	vm_destroy(&rt->vm);
	if (rt->pool_mem)
		munmap(rt->pool_mem, rt->pool_len);
	free(rt->vcpus);
	free(rt->sd);
	free(rt->runner);
	free((void *)rt->kicking);
	pthread_mutex_destroy(&rt->shootdown_lock);
	free(rt->host);
	free(rt->phys);
	pthread_mutex_destroy(&rt->vcpu_lock);
	free(rt);
	return err;
}

/* Forgets every slot and table: deletes the KVM slots, rebuilds the tables
 * from an empty pool, maps the system pieces again and makes every vCPU
 * reload CR3 before its next call. No vCPU may be running. */
int kvmrt_reset(struct kvmrt *rt, char *why, size_t why_len)
{
	unsigned flags = rt->slots.flags;
	uint32_t cap = rt->slots.capacity;
	int err;

	for (uint32_t i = 0; i < rt->slots.count; i++) {
		const struct slot *sl = &rt->slots.table[i];
		err = kvm_set_region(rt->vm.fd, sl->id, sl->pa, 0, sl->va, false);
		if (err)
			return kvmrt_fail(why, why_len, err, "deleting slot %u (pa 0x%llx): %s", sl->id,
					  (unsigned long long)sl->pa, strerror(-err));
	}
	slots_destroy(&rt->slots);
	rt->slots_ready = false;
	pt_destroy(&rt->pt);
	rt->pt_ready = false;
	/* No vCPU runs, and each flushes on entry at the new epoch. */
	rt->reclaimed += pool_reclaim(&rt->pool, pool_epoch_advance(&rt->pool));
	err = pt_init(&rt->pt, &rt->pool, 4, rt->huge_1g);
	if (err)
		return kvmrt_fail(why, why_len, err, "pt_init: %s", strerror(-err));
	rt->pt_ready = true;
	err = slots_init(&rt->slots, &rt->pt, &rt->pm, cap, flags, kvmrt_set_slot, rt);
	if (err)
		return kvmrt_fail(why, why_len, err, "slots_init: %s", strerror(-err));
	rt->slots_ready = true;
	rt->vm.cr3 = pt_root_pa(&rt->pt);
	err = kvmrt_map_system(rt, why, why_len);
	for (unsigned i = 0; i < rt->nvcpus && !err; i++) {
		rt->vcpus[i].dirty = true;
		err = kvmrt_map_range(rt, (uint64_t)(uintptr_t)rt->vcpus[i].area, AREA_SIZE);
		if (err)
			kvmrt_fail(why, why_len, err, "mapping vCPU %u's area: %s", i, strerror(-err));
	}
	return err;
}

void kvmrt_checkpoint(struct kvmrt *rt)
{
	rt->ckpt_slots = __atomic_load_n(&rt->slots.count, __ATOMIC_ACQUIRE);
	rt->ckpt_mmio = rt->slots.mmio_blocks;
	rt->ckpt_set = true;
}

int kvmrt_rollback(struct kvmrt *rt, uint32_t *deleted, char *why, size_t why_len)
{
	struct slots *s = &rt->slots;
	uint32_t n = 0;

	if (deleted)
		*deleted = 0;
	if (!rt->ckpt_set || s->mmio_blocks != rt->ckpt_mmio || s->count < rt->ckpt_slots)
		return kvmrt_fail(why, why_len, -EBUSY, "no checkpoint to roll back to (or mmio entries since)");
	n = s->count - rt->ckpt_slots;
	int err = slots_truncate(s, rt->ckpt_slots);
	if (err)
		return kvmrt_fail(why, why_len, err, "rolling the slots back to %u: %s", rt->ckpt_slots, strerror(-err));
	for (unsigned i = 0; i < rt->nvcpus; i++) {
		rt->vcpus[i].repeat = 0;
		rt->vcpus[i].repeat_cr2 = 0;
	}
	/* No vCPU runs, and each flushes on entry at the new epoch. */
	rt->reclaimed += pool_reclaim(&rt->pool, pool_epoch_advance(&rt->pool));
	if (deleted)
		*deleted = n;
	return 0;
}

/* ---- vCPUs and calls --------------------------------------------------- */

static __thread struct { uint64_t gen; unsigned idx; } kvmrt_tls;

static bool kvmrt_try_claim(struct vcpu *v)
{
	bool free_ = false;
	return atomic_compare_exchange_strong(&v->busy, &free_, true);
}

/* A new vCPU, mapped, claimed. Creation allocates: never on a fault path. */
static int kvmrt_new_vcpu(struct kvmrt *rt, struct vcpu **out, struct kvmrt_fault *f)
{
	const char *why = "";
	int err = 0;

	pthread_mutex_lock(&rt->vcpu_lock);
	unsigned n = rt->nvcpus;
	if (n == rt->cfg.max_vcpus) {
		err = -EBUSY;
		vcpu_fault_set(f, KVMRT_HOST_ERROR, "all %u vCPUs are busy", n);
		goto out;
	}
	struct vcpu *v = &rt->vcpus[n];
	err = vcpu_create(&rt->vm, v, (int)n, &why);
	if (err) {
		vcpu_fault_set(f, KVMRT_HOST_ERROR, "creating vCPU %u: %s: %s", n, why, strerror(-err));
		goto out;
	}
	err = kvmrt_map_range(rt, (uint64_t)(uintptr_t)v->area, AREA_SIZE);
	if (err) {
		vcpu_fault_set(f, KVMRT_HOST_ERROR, "mapping vCPU %u's system area: %s", n, strerror(-err));
		vcpu_destroy(v);
		goto out;
	}
	atomic_store(&v->busy, true);
	atomic_store(&rt->nvcpus, n + 1);
	if (rt->check && kvmrt_check_now(rt, "after mapping a vCPU area", (uint64_t)(uintptr_t)v->area)) {
		err = -EFAULT;
		vcpu_fault_set(f, KVMRT_HOST_ERROR, "check failed: %s", rt->check_why);
	}
	*out = v;
out:
	pthread_mutex_unlock(&rt->vcpu_lock);
	return err;
}

/* The vCPU this thread used last if free (KVM charges a thread change on a
 * vCPU with an RCU grace period), else any free one, else a new one. */
static int kvmrt_claim(struct kvmrt *rt, struct vcpu **out, struct kvmrt_fault *f)
{
	unsigned n = atomic_load(&rt->nvcpus);

	if (kvmrt_tls.gen == rt->gen && kvmrt_tls.idx < n && kvmrt_try_claim(&rt->vcpus[kvmrt_tls.idx])) {
		*out = &rt->vcpus[kvmrt_tls.idx];
		return 0;
	}
	for (unsigned i = 0; i < n; i++) {
		if (kvmrt_try_claim(&rt->vcpus[i])) {
			*out = &rt->vcpus[i];
			goto claimed;
		}
	}
	int err = kvmrt_new_vcpu(rt, out, f);
	if (err == -EFAULT)
		atomic_store(&(*out)->busy, false);
	if (err)
		return err;
claimed:
	kvmrt_tls.gen = rt->gen;
	kvmrt_tls.idx = (unsigned)(*out - rt->vcpus);
	return 0;
}

int kvmrt_call(struct kvmrt *rt, kvmrt_fn fn, uint64_t arg, uint64_t *ret, struct kvmrt_fault *fault)
{
	struct kvmrt_fault scratch;
	struct kvmrt_fault *f = fault ? fault : &scratch;
	struct vcpu *v = NULL;
	uint64_t r = 0;
	int err;

	memset(f, 0, sizeof(*f));
	f->vector = -1;
	if (rt->check_failed) {
		vcpu_fault_set(f, KVMRT_HOST_ERROR, "check failed earlier: %s", rt->check_why);
		return -EFAULT;
	}
	err = kvmrt_claim(rt, &v, f);
	if (err)
		return err;
	err = vcpu_call(v, (uint64_t)(uintptr_t)fn, arg, &r, f);
	atomic_store(&v->busy, false);
	if (!err && ret)
		*ret = r;
	return err;
}

/* ---- reporting --------------------------------------------------------- */

void kvmrt_exits(struct kvmrt *rt, struct kvmrt_exits *e)
{
	unsigned n = atomic_load(&rt->nvcpus);

	memset(e, 0, sizeof(*e));
	for (unsigned i = 0; i < n; i++) {
		struct vcpu_counts *c = &rt->vcpus[i].n;
		e->mmio += c->mmio;
		e->pf += c->pf;
		e->io += c->io;
		e->internal += c->internal;
		e->other += c->other;
	}
	e->shootdowns = rt->shootdowns;
	e->reclaimed = rt->reclaimed;
}

const char *kvmrt_exits_str(const struct kvmrt_exits *e, char *buf, size_t len)
{
	snprintf(buf, len, "exits: mmio=%llu pf=%llu io=%llu internal=%llu other=%llu shootdowns=%llu reclaimed=%llu",
		 (unsigned long long)e->mmio, (unsigned long long)e->pf, (unsigned long long)e->io,
		 (unsigned long long)e->internal, (unsigned long long)e->other, (unsigned long long)e->shootdowns,
		 (unsigned long long)e->reclaimed);
	return buf;
}

const char *kvmrt_backend(const struct kvmrt *rt)
{
	return kvm_backend_name(rt->vm.backend);
}

const char *kvmrt_fault_str(const struct kvmrt_fault *f, char *buf, size_t len)
{
	static const char *const names[] = {
		"ok", "page-fault", "exception", "syscall", "efault", "emulation-failure",
		"shutdown", "mmio", "timeout", "host-error",
	};
	const char *name = (unsigned)f->reason < sizeof(names) / sizeof(names[0]) ? names[f->reason] : "?";

	snprintf(buf, len, "fault: reason=%s addr=0x%llx error_code=0x%llx rip=0x%llx vector=%d: %s", name,
		 (unsigned long long)f->addr, (unsigned long long)f->error_code, (unsigned long long)f->rip,
		 f->vector, f->why);
	return buf;
}

uint32_t kvmrt_slot_count(struct kvmrt *rt)
{
	return __atomic_load_n(&rt->slots.count, __ATOMIC_ACQUIRE);
}

const char *kvmrt_check(struct kvmrt *rt, char *buf, size_t len)
{
	return check_slots(&rt->slots, buf, len);
}
