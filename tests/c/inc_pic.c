/* tests/test_link_incremental.py: C code built with -fPIC -O0 that reads an exported Toy var
   and calls an exported Toy function through the GOT. Built twice: as is (the linker relaxes
   the GOT loads to direct references) and with `-fno-plt -Wa,-mrelax-relocations=no -DP=got`
   (every access reads a GOT slot, which must hold the Toy declaration's current address). */

#ifndef P
#define P pic
#endif
#define JOIN(a, b) a##_##b
#define NAME(a, b) JOIN(a, b)

extern long toy_var;
extern long toy_fn(long);

long NAME(P, read)(void) { return toy_var; }
long NAME(P, call)(long x) { return toy_fn(x) + toy_var; }
/* the function's address, loaded (from the GOT), then called */
long NAME(P, via)(long x) { long (*volatile f)(long) = toy_fn; return f(x) * 2; }
