/* tests/test_link_incremental.py: C code whose references to Toy declarations must follow
   them when an update moves them: a call of an exported Toy function, a pointer to one in
   C's .data, a read of an exported Toy var; a weak definition a Toy export may beat; a weak
   reference to a Toy export that may come and go; a thread-local of C's own. Built with -O2
   (non-PIC: direct calls and 32-bit PC-relative references). */

extern long toy_cb(long);
extern long toy_counter;
extern long toy_opt(long) __attribute__((weak));

long (*c_hook)(long) = toy_cb; /* an R_X86_64_64 in .data */
long c_calls;
__thread long c_tls = 5;

/* BONUS lets a test rebuild this object with other code */
#ifndef BONUS
#define BONUS 1
#endif

long c_call_cb(long x) { c_calls++; c_tls++; return toy_cb(x) + BONUS; }
long c_call_hook(long x) { return c_hook(x) * 2 + c_tls; }
long c_read_counter(void) { return toy_counter; }

__attribute__((weak)) long c_weak(void) { return 1; }
long c_use_weak(void) { return c_weak() * 10; }

long c_opt(long x) { return toy_opt ? toy_opt(x) : -1; }
