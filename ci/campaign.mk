# Campaign, triage, coverage and OSS-Fuzz targets; included by the top
# Makefile after fuzz/build.mk (it needs FUZZ_TARGETS). The work is in ci/
# scripts, which build what they need with the fuzz-build* targets.
#   make fuzz [FUZZ_TIME=180] [FUZZ_ENGINE=afl|libfuzzer] [FUZZ_JOBS=cores]
#             [FUZZ_TARGETS="fuzz_pt ..."] [FUZZ_STOP_ON_CRASH=1]
#             [FUZZ_SEEDS=empty]  one minimal input per target, no dictionary
#             [FUZZ_MUTATOR=bytes] byte mutation only (default: structure-aware)
#   make triage [CAMPAIGN=campaigns/<stamp>]      (default campaigns/latest)
#   make bisect ENTRY=crashes/<target>/<slug> [GOOD=rev] [BAD=rev]
#                                                  first bad commit of an entry
#   make corpus-min [CAMPAIGN=...]                 merge findings into corpus/
#   make coverage [CAMPAIGN=...]                   llvm-cov report, build/coverage/
#                                                  (corpus, crashes and CAMPAIGN)
#   make oss-fuzz-local                            .clusterfuzzlite/build.sh, every engine/sanitizer

FUZZ_TIME   ?= 180
FUZZ_ENGINE ?=
CAMPAIGN    ?= campaigns/latest

.PHONY: fuzz triage bisect corpus-min coverage oss-fuzz-local
fuzz:
	@FUZZ_TIME='$(FUZZ_TIME)' FUZZ_ENGINE='$(FUZZ_ENGINE)' FUZZ_TARGETS='$(FUZZ_TARGETS)' FUZZ_SEEDS='$(FUZZ_SEEDS)' FUZZ_MUTATOR='$(FUZZ_MUTATOR)' ci/fuzz-campaign

triage:
	@ci/triage '$(CAMPAIGN)'

bisect:
	@ci/triage --bisect '$(ENTRY)' $(if $(GOOD),--good '$(GOOD)') $(if $(BAD),--bad '$(BAD)')

corpus-min:
	@FUZZ_TARGETS='$(FUZZ_TARGETS)' ci/corpus-min '$(CAMPAIGN)'

# Without CAMPAIGN=, ci/coverage takes campaigns/latest when there is one.
coverage:
	@FUZZ_TARGETS='$(FUZZ_TARGETS)' ci/coverage $(if $(filter command line environment,$(origin CAMPAIGN)),'$(CAMPAIGN)')

oss-fuzz-local:
	@ci/oss-fuzz-local

# Check-time tests of the scripts above (toy target with planted bugs), and
# of the Makefile's default goal and help, and of every ci/ script's --help.
CAMPAIGN_TESTS := ci/tests/test-triage ci/tests/test-regression ci/tests/test-campaign
# The workflows and .clusterfuzzlite/, and that the checker catches planted
# mistakes (seconds; .ci/run runs ci/check-workflows first too).
CAMPAIGN_TESTS += ci/tests/test-check-workflows
# Triage with every build (TSan race, OOM, hang), bisect over a scratch
# history, two AFL++ "machines" on one sync folder.
CAMPAIGN_TESTS += ci/tests/test-triage-tsan ci/tests/test-bisect ci/tests/test-sync
TESTS += $(CAMPAIGN_TESTS) ci/tests/test-make ci/tests/test-help
CHECK_DEPS += $(B)/kvmpt-trace
