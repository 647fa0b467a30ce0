/* PT_ASSERT(x): a proven invariant. On in debug and fuzz builds (PT_DEBUG),
 * it prints file, line and the expression with write(2) (async-signal-safe)
 * and aborts. Bad input never reaches an assertion: it gets an errno. */
#ifndef KVMPT_PT_ASSERT_H
#define KVMPT_PT_ASSERT_H

void pt_assert_fail(const char *file, int line, const char *expr) __attribute__((noreturn));

#ifdef PT_DEBUG
#define PT_ASSERT(x) do { if (!(x)) pt_assert_fail(__FILE__, __LINE__, #x); } while (0)
#else
#define PT_ASSERT(x) ((void)0)
#endif

#endif
