# `make -s -f Makefile -f ci/print-var.mk print-var-NAME` prints the make
# variable NAME (ci/ scripts ask for FUZZ_TARGETS, CORE_SRCS, ...).
print-var-%:
	@echo '$($*)'
