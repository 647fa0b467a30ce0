/* Thin layer over /dev/kvm: raw ioctl wrappers that return 0 (or a value) or
 * a negative errno, so callers and negative tests see the error, and the
 * backend probe. Only kvmrt/ issues ioctls. */
#ifndef KVMRT_KVM_H
#define KVMRT_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

enum kvm_backend { KVM_BACKEND_UNKNOWN = 0, KVM_BACKEND_PVM, KVM_BACKEND_SVM, KVM_BACKEND_VMX };

/* ioctl(fd, req, arg): its non-negative result, or -errno. Retries EINTR
 * except for KVM_RUN, whose EINTR the caller must see. */
long kvm_ioctl(int fd, unsigned long req, void *arg);
long kvm_ioctl_val(int fd, unsigned long req, unsigned long arg);

/* Opens /dev/kvm and checks the API version: fd, or -errno with *why set. */
int kvm_open_dev(const char **why);

/* The backend serving /dev/kvm: PVM (/sys/module/kvm_pvm), SVM (kvm_amd) or
 * VMX (kvm_intel). */
enum kvm_backend kvm_backend_probe(void);
const char *kvm_backend_name(enum kvm_backend b);

/* KVM_GET_SUPPORTED_CPUID into a malloc'd array, growing it on E2BIG.
 * 0 or -errno. */
int kvm_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out);

/* Looks up leaf/index in c: the entry or NULL. */
struct kvm_cpuid_entry2 *kvm_cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t index);

/* KVM_SET_USER_MEMORY_REGION for slot id: 0 or -errno (len 0 deletes). */
int kvm_set_region(int vm_fd, uint32_t id, uint64_t gpa, uint64_t len, uint64_t hva, bool readonly);

/* One MSR write / read: 0 or -errno (-EIO when KVM refused the MSR). */
int kvm_set_msr(int vcpu_fd, uint32_t index, uint64_t value);
int kvm_get_msr(int vcpu_fd, uint32_t index, uint64_t *value);

#endif
