/* Replay driver: runs each file (or every regular file under each directory,
 * recursively) given as an argument through the target once, without a
 * fuzzing engine; builds with gcc. A failing input aborts with the target's
 * report, naming the file first.
 *
 *   TARGET [--trace] [--quiet] FILE|DIR...
 *     --trace   print the text trace each input decodes to on stdout
 *               (replayable by kvmpt-trace), instead of the summary line
 *   With no file argument, reads one input from stdin.
 *
 * Files named *.md, *.txt, *.trace and *.log are skipped (crash records
 * keep their notes next to the reproducer). Each input gets REPLAY_TIMEOUT
 * seconds (default 25): a hang ends as a named failure, not a stalled test.
 * Exit: 0 all ran, 2 usage or unreadable file, 77 the target declined to
 * run (fuzz_init). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzzer.h"

static int want_trace, quiet;
static unsigned long ran;
static const char *volatile current_input;

/* The input ran out of time: say which, then abort like any failure. */
static void on_timeout(int sig)
{
	(void)sig;
	static const char msg[] = "replay: TIMEOUT (hang) in input ";
	const char *name = current_input ? current_input : "?";
	if (write(2, msg, sizeof(msg) - 1) < 0 || write(2, name, strlen(name)) < 0 || write(2, "\n", 1) < 0)
		abort();
	abort();
}

static unsigned replay_timeout(void)
{
	const char *env = getenv("REPLAY_TIMEOUT");
	return env && atoi(env) > 0 ? (unsigned)atoi(env) : 25;
}

static int skipped_name(const char *path)
{
	static const char *const ext[] = { ".md", ".txt", ".trace", ".log" };
	size_t n = strlen(path);
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		size_t e = strlen(ext[i]);
		if (n >= e && !strcmp(path + n - e, ext[i]))
			return 1;
	}
	return 0;
}

static int run_stream(FILE *f, const char *name)
{
	size_t cap = 1 << 16, len = 0;
	unsigned char *buf = malloc(cap);
	if (!buf)
		return 2;
	for (;;) {
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (len < cap)
			break;
		unsigned char *nb = realloc(buf, cap *= 2);
		if (!nb) {
			free(buf);
			return 2;
		}
		buf = nb;
	}
	if (ferror(f)) {
		fprintf(stderr, "replay: cannot read %s\n", name);
		free(buf);
		return 2;
	}
	/* An exact-size copy, so that ASan sees reads past the end. */
	unsigned char *data = malloc(len ? len : 1);
	if (!data) {
		free(buf);
		return 2;
	}
	memcpy(data, buf, len);
	free(buf);
	if (!quiet)
		fprintf(stderr, "replay: %s (%zu bytes)\n", name, len);
	if (want_trace)
		printf("# input %s\n", name);
	current_input = name;
	signal(SIGALRM, on_timeout);
	alarm(replay_timeout());
	fuzz_one(data, len, want_trace ? stdout : NULL);
	alarm(0);
	fflush(stdout);
	free(data);
	ran++;
	return 0;
}

static int run_path(const char *path)
{
	struct stat st;
	if (stat(path, &st)) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return 2;
	}
	if (S_ISDIR(st.st_mode)) {
		struct dirent **ents;
		int n = scandir(path, &ents, NULL, alphasort);
		if (n < 0) {
			fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
			return 2;
		}
		int ret = 0;
		for (int i = 0; i < n; i++) {
			if (ents[i]->d_name[0] != '.' && !ret) {
				size_t len = strlen(path) + strlen(ents[i]->d_name) + 2;
				char *sub = malloc(len);
				if (!sub)
					return 2;
				snprintf(sub, len, "%s/%s", path, ents[i]->d_name);
				ret = run_path(sub);
				free(sub);
			}
			free(ents[i]);
		}
		free(ents);
		return ret;
	}
	if (!S_ISREG(st.st_mode) || skipped_name(path))
		return 0;
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return 2;
	}
	int ret = run_stream(f, path);
	fclose(f);
	return ret;
}

int main(int argc, char **argv)
{
	int files = 0, ret = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--trace"))
			want_trace = 1;
		else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q"))
			quiet = 1;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fprintf(stderr, "usage: %s [--trace] [--quiet] FILE|DIR...\n", argv[0]);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "replay: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (fuzz_init())
		return 77;
	for (int i = 1; i < argc && !ret; i++) {
		if (argv[i][0] == '-' && argv[i][1])
			continue;
		files++;
		ret = run_path(argv[i]);
	}
	if (!files)
		ret = run_stream(stdin, "<stdin>");
	if (!ret && !want_trace)
		fprintf(stderr, "replay: %lu inputs ran\n", ran);
	return ret;
}
