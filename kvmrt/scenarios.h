/* The `kvmrt run` scenarios, shared by the command and the tests. Each runs
 * guest code on one or more vCPU threads and checks the results on the host. */
#ifndef KVMRT_SCENARIOS_H
#define KVMRT_SCENARIOS_H

#include <stdbool.h>
#include <stdio.h>

#include "kvmrt.h"

/* Outcomes, worst last; also the exit status of `kvmrt run`. */
enum scen_status {
	SCEN_OK = 0,          /* the scenario did what it should */
	SCEN_FAIL = 1,        /* wrong data, an unexpected fault, a broken invariant */
	SCEN_USAGE = 2,
	SCEN_EMULATION = 3,   /* stopped by a KVM emulation failure, reported with the
			       * instruction bytes: the expected legacy outcome for
			       * xsave, avx and cmpxchg16b (and of CPL0 on PVM) */
	SCEN_SKIP = 77,       /* /dev/kvm missing or unusable */
};

struct scen_opts {
	bool legacy;
	bool check;
	int cpl;              /* 3 or 0 */
	unsigned vcpus;       /* threads; race uses at least 2 */
	bool quiet;           /* no progress lines */
};

struct scen_report {
	enum scen_status status;
	struct kvmrt_exits exits;
	unsigned slots;       /* memory slots at the end */
	char why[512];        /* the first failure or emulation failure */
	unsigned printed;     /* FAIL / EMULATION FAILURE lines written to out */
};

/* Names of the scenarios, NULL-terminated. */
extern const char *const scen_names[];

/* Opens a runtime with opts, runs the scenario, closes. Progress and fault
 * records go to out (NULL: silent). */
enum scen_status scen_run(const char *name, const struct scen_opts *opts, FILE *out, struct scen_report *rep);

#endif
