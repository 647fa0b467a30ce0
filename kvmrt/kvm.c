/* Raw /dev/kvm wrappers and the backend probe. */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

long kvm_ioctl(int fd, unsigned long req, void *arg)
{
	long r;

	do
		r = ioctl(fd, req, arg);
	while (r < 0 && errno == EINTR && req != KVM_RUN);
	return r < 0 ? -errno : r;
}

long kvm_ioctl_val(int fd, unsigned long req, unsigned long arg)
{
	long r;

	do
		r = ioctl(fd, req, arg);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

int kvm_open_dev(const char **why)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		int err = -errno;
		*why = err == -ENOENT ? "/dev/kvm does not exist (no KVM module loaded or not exposed here)"
		     : err == -EACCES || err == -EPERM ? "/dev/kvm is not accessible to this user (permission denied)"
		     : "/dev/kvm cannot be opened";
		return err;
	}
	long v = kvm_ioctl_val(fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		close(fd);
		*why = "/dev/kvm reports an unexpected KVM API version";
		return v < 0 ? (int)v : -EINVAL;
	}
	return fd;
}

static bool kvm_path_exists(const char *p)
{
	return access(p, F_OK) == 0;
}

enum kvm_backend kvm_backend_probe(void)
{
	/* PVM first: on a PVM host kvm_amd/kvm_intel may be loaded but unused. */
	if (kvm_path_exists("/sys/module/kvm_pvm"))
		return KVM_BACKEND_PVM;
	if (kvm_path_exists("/sys/module/kvm_amd"))
		return KVM_BACKEND_SVM;
	if (kvm_path_exists("/sys/module/kvm_intel"))
		return KVM_BACKEND_VMX;
	return KVM_BACKEND_UNKNOWN;
}

const char *kvm_backend_name(enum kvm_backend b)
{
	switch (b) {
	case KVM_BACKEND_PVM: return "PVM (kvm_pvm: shadow paging, guest CPL0 emulated, CPL3 native)";
	case KVM_BACKEND_SVM: return "SVM (kvm_amd)";
	case KVM_BACKEND_VMX: return "VMX (kvm_intel)";
	default: return "unknown";
	}
}

int kvm_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
{
	for (uint32_t n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = n;
		long r = kvm_ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
		if (r == 0) {
			*out = c;
			return 0;
		}
		free(c);
		if (r != -E2BIG)
			return (int)r;
	}
	return -E2BIG;
}

struct kvm_cpuid_entry2 *kvm_cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function != leaf)
			continue;
		if (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index)
			return e;
	}
	return NULL;
}

int kvm_set_region(int vm_fd, uint32_t id, uint64_t gpa, uint64_t len, uint64_t hva, bool readonly)
{
	struct kvm_userspace_memory_region m = {
		.slot = id,
		.flags = readonly ? KVM_MEM_READONLY : 0,
		.guest_phys_addr = gpa,
		.memory_size = len,
		.userspace_addr = hva,
	};
	return (int)kvm_ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &m);
}

/* struct kvm_msrs with room for one entry (its flexible array member cannot
 * be nested portably). */
struct kvm_msrs_one {
	uint32_t nmsrs;
	uint32_t pad;
	struct kvm_msr_entry e;
};
_Static_assert(sizeof(struct kvm_msrs) == offsetof(struct kvm_msrs_one, e), "kvm_msrs layout");

int kvm_set_msr(int vcpu_fd, uint32_t index, uint64_t value)
{
	struct kvm_msrs_one m;

	memset(&m, 0, sizeof(m));
	m.nmsrs = 1;
	m.e.index = index;
	m.e.data = value;
	long r = kvm_ioctl(vcpu_fd, KVM_SET_MSRS, &m);
	/* KVM_SET_MSRS returns how many it set: 0 means refused. */
	return r < 0 ? (int)r : r == 1 ? 0 : -EIO;
}

int kvm_get_msr(int vcpu_fd, uint32_t index, uint64_t *value)
{
	struct kvm_msrs_one m;

	memset(&m, 0, sizeof(m));
	m.nmsrs = 1;
	m.e.index = index;
	long r = kvm_ioctl(vcpu_fd, KVM_GET_MSRS, &m);
	if (r < 0)
		return (int)r;
	if (r != 1)
		return -EIO;
	*value = m.e.data;
	return 0;
}
