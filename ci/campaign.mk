# Campaign, triage, coverage and OSS-Fuzz targets; included by the top
# Makefile after fuzz/build.mk (it needs FUZZ_TARGETS). The work is in ci/
# scripts, which build what they need with the fuzz-build* targets.
#   make fuzz [FUZZ_TIME=180] [FUZZ_ENGINE=afl|libfuzzer] [FUZZ_JOBS=cores]
#             [FUZZ_TARGETS="fuzz_pt ..."] [FUZZ_STOP_ON_CRASH=1]
#   make triage [CAMPAIGN=campaigns/<stamp>]      (default campaigns/latest)
#   make corpus-min [CAMPAIGN=...]                 merge findings into corpus/
#   make coverage [CAMPAIGN=...]                   llvm-cov report, build/coverage/
#   make oss-fuzz-local                            ci/oss-fuzz/build.sh, every engine/sanitizer

FUZZ_TIME   ?= 180
FUZZ_ENGINE ?=
CAMPAIGN    ?= campaigns/latest

.PHONY: fuzz triage corpus-min coverage oss-fuzz-local
fuzz:
	@FUZZ_TIME='$(FUZZ_TIME)' FUZZ_ENGINE='$(FUZZ_ENGINE)' FUZZ_TARGETS='$(FUZZ_TARGETS)' ci/fuzz-campaign

triage:
	@ci/triage '$(CAMPAIGN)'

corpus-min:
	@FUZZ_TARGETS='$(FUZZ_TARGETS)' ci/corpus-min '$(CAMPAIGN)'

coverage:
	@FUZZ_TARGETS='$(FUZZ_TARGETS)' COVERAGE_CAMPAIGN='$(if $(filter command line environment,$(origin CAMPAIGN)),$(CAMPAIGN))' ci/coverage

oss-fuzz-local:
	@ci/oss-fuzz-local

# Check-time tests of the scripts above (toy target with planted bugs), and
# of the Makefile's default goal and help.
CAMPAIGN_TESTS := ci/tests/test-triage ci/tests/test-regression ci/tests/test-campaign
TESTS += $(CAMPAIGN_TESTS) ci/tests/test-make
CHECK_DEPS += $(B)/kvmpt-trace
