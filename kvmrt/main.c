/* kvmrt: the command.
 *   kvmrt run SCENARIO [--legacy] [--check] [--vcpus N] [--cpl 0|3]
 *   kvmrt list          the scenarios, one a line
 *   kvmrt --help        this usage on stdout, exit 0
 * Runs one scenario in a fresh VM and prints its progress, any fault records,
 * and as the last line "exits: mmio=N pf=N io=N internal=N other=N".
 * Exit status: 0 success; 1 failure (wrong data, unexpected fault, broken
 * invariant); 2 usage; 3 stopped by a KVM emulation failure (reported with
 * the instruction bytes: the expected legacy outcome of xsave, avx and
 * cmpxchg16b, and of CPL0 on PVM); 77 /dev/kvm missing or unusable. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenarios.h"

static void usage_to(FILE *f)
{
	fprintf(f, "usage: kvmrt run SCENARIO [--legacy] [--check] [--vcpus N] [--cpl 0|3]\n"
		   "       kvmrt list\nscenarios:");
	for (int i = 0; scen_names[i]; i++)
		fprintf(f, " %s", scen_names[i]);
	fprintf(f, "\nexit status: 0 ok, 1 failure, 2 usage, 3 emulation failure (expected in legacy mode\n"
		   "for xsave/avx/cmpxchg16b), 77 /dev/kvm unusable. KVMRT_CHECK=1 is --check.\n");
}

static int usage(void)
{
	usage_to(stderr);
	return SCEN_USAGE;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int main(int argc, char **argv)
{
	struct scen_opts o = { .cpl = 3, .vcpus = 1 };
	struct scen_report rep;
	const char *name;
	char ex[128];

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))) {
		usage_to(stdout);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "list")) {
		for (int i = 0; scen_names[i]; i++)
			printf("%s\n", scen_names[i]);
		return 0;
	}
	if (argc < 3 || strcmp(argv[1], "run"))
		return usage();
	name = argv[2];
	for (int i = 3; i < argc; i++) {
		unsigned v;
		if (!strcmp(argv[i], "--legacy")) {
			o.legacy = true;
		} else if (!strcmp(argv[i], "--check")) {
			o.check = true;
		} else if (!strcmp(argv[i], "--vcpus") && i + 1 < argc && !parse_uint(argv[i + 1], 1, 64, &v)) {
			o.vcpus = v;
			i++;
		} else if (!strcmp(argv[i], "--cpl") && i + 1 < argc && !parse_uint(argv[i + 1], 0, 3, &v) &&
			   (v == 0 || v == 3)) {
			o.cpl = (int)v;
			i++;
		} else {
			fprintf(stderr, "kvmrt: bad argument '%s'\n", argv[i]);
			return usage();
		}
	}
	printf("kvmrt run %s: %s mode, CPL%d, %u vCPU thread(s)%s\n", name, o.legacy ? "legacy" : "lazy", o.cpl,
	       o.vcpus, o.check ? ", checker on" : "");
	enum scen_status st = scen_run(name, &o, stdout, &rep);
	if (st == SCEN_USAGE) {
		fprintf(stderr, "kvmrt: %s\n", rep.why);
		return usage();
	}
	if (st == SCEN_SKIP) {
		printf("SKIP %s\n", rep.why);
		return st;
	}
	/* The outcome's message was printed when it happened (scen_note's
	 * "EMULATION FAILURE: ..." or "FAIL: ..." line). Printed again here it
	 * made legacy xsave show the emulation failure twice: repeat it only
	 * when it is not the one line above (several, or none printed). */
	const char *what = st == SCEN_OK ? "ok" : st == SCEN_EMULATION ? "emulation failure" : "FAILED";
	if (!rep.why[0])
		printf("result: %s\n", what);
	else if (rep.printed == 1)
		printf("result: %s (the %s line above)\n", what, st == SCEN_EMULATION ? "EMULATION FAILURE" : "FAIL");
	else
		printf("result: %s: %s\n", what, rep.why);
	printf("slots: %u\n", rep.slots);
	printf("%s\n", kvmrt_exits_str(&rep.exits, ex, sizeof(ex)));
	return st;
}
