/* Variadic functions and functions of many parameters, for tests/test_variadic.py.
 *
 * No C library is linked: <stdarg.h>'s va_start and va_arg are the compiler's built-ins. Each
 * function mixes every argument it gets, in order, into a checksum that the test computes
 * too (`mix`, `str_hash`), then overwrites the caller-saved registers (`trash`), so that a
 * caller that kept a value in one of them across the call prints a wrong result, and counts
 * a call that found the stack not 16-byte aligned (`misaligned`).
 */
#include <stdarg.h>

long misaligned;
long calls;

#define CHECK_FRAME()                                                  \
    do {                                                               \
        calls++;                                                       \
        if ((unsigned long)__builtin_frame_address(0) & 15)            \
            misaligned++;                                              \
    } while (0)

/* What a callee may do to the registers the ABI does not keep across a call. */
static void trash(void) {
#if defined(__x86_64__)
    __asm__ volatile("movabs $0x5a5a5a5a5a5a5a5a, %%rax\n\t"
                     "mov %%rax, %%rcx\n\tmov %%rax, %%rdx\n\tmov %%rax, %%rsi\n\t"
                     "mov %%rax, %%rdi\n\tmov %%rax, %%r8\n\tmov %%rax, %%r9\n\t"
                     "mov %%rax, %%r10\n\tmov %%rax, %%r11"
                     ::: "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
                         "memory");
#elif defined(__aarch64__)
    __asm__ volatile("mov x0, #0x5a5a\n\tmov x1, x0\n\tmov x2, x0\n\tmov x3, x0\n\t"
                     "mov x4, x0\n\tmov x5, x0\n\tmov x6, x0\n\tmov x7, x0\n\t"
                     "mov x8, x0\n\tmov x9, x0\n\tmov x10, x0\n\tmov x11, x0\n\t"
                     "mov x12, x0\n\tmov x13, x0\n\tmov x14, x0\n\tmov x15, x0\n\t"
                     "mov x16, x0\n\tmov x17, x0"
                     ::: "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10",
                         "x11", "x12", "x13", "x14", "x15", "x16", "x17", "memory");
#endif
}

static long mix(long h, long x) {
    return (long)((unsigned long)h * 1000003UL) ^ x;
}

static long str_hash(const char *s) {
    unsigned long h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return (long)h;
}

/* A bool reaches C as 0 or 1 in 64 bits; anything else is marked. */
static long as_bool(long x) {
    return x == 0 || x == 1 ? x : -1000000;
}

/* The n longs after n. */
long hash_va(long n, ...) {
    va_list ap;
    long h = 17 + n;
    va_start(ap, n);
    for (long i = 0; i < n; i++)
        h = mix(h, va_arg(ap, long));
    va_end(ap);
    trash();
    CHECK_FRAME();
    return h;
}

/* One argument after `kinds` per letter of it: i an int, b a bool, s a string. */
long kinds_va(const char *kinds, ...) {
    va_list ap;
    long h = str_hash(kinds);
    va_start(ap, kinds);
    for (const char *k = kinds; *k; k++) {
        if (*k == 's')
            h = mix(h, str_hash(va_arg(ap, const char *)));
        else if (*k == 'b')
            h = mix(h, as_bool(va_arg(ap, long)));
        else
            h = mix(h, va_arg(ap, long));
    }
    va_end(ap);
    trash();
    CHECK_FRAME();
    return h;
}

long eight(long a, long b, long c, long d, long e, long f, long g, long h) {
    long r = 8;
    r = mix(r, a);
    r = mix(r, b);
    r = mix(r, c);
    r = mix(r, d);
    r = mix(r, e);
    r = mix(r, f);
    r = mix(r, g);
    r = mix(r, h);
    trash();
    CHECK_FRAME();
    return r;
}

long ten(long a, _Bool b, const char *c, long d, long e, long f, _Bool g, const char *h,
         long i, long j) {
    long r = 10;
    r = mix(r, a);
    r = mix(r, b);
    r = mix(r, str_hash(c));
    r = mix(r, d);
    r = mix(r, e);
    r = mix(r, f);
    r = mix(r, g);
    r = mix(r, str_hash(h));
    r = mix(r, i);
    r = mix(r, j);
    trash();
    CHECK_FRAME();
    return r;
}

/* Eight fixed parameters, the seventh and eighth on the stack, then the n longs after n. */
long wide_va(long a, long b, long c, long d, long e, long f, long g, long n, ...) {
    va_list ap;
    long h = 7;
    h = mix(h, a);
    h = mix(h, b);
    h = mix(h, c);
    h = mix(h, d);
    h = mix(h, e);
    h = mix(h, f);
    h = mix(h, g);
    h = mix(h, n);
    va_start(ap, n);
    for (long i = 0; i < n; i++)
        h = mix(h, va_arg(ap, long));
    va_end(ap);
    trash();
    CHECK_FRAME();
    return h;
}

/* A C bool result, whose upper bits the ABI leaves undefined. */
_Bool odd_va(long n, ...) {
    va_list ap;
    unsigned long s = 0;
    va_start(ap, n);
    for (long i = 0; i < n; i++)
        s += (unsigned long)va_arg(ap, long);
    va_end(ap);
    trash();
    CHECK_FRAME();
    return s & 1;
}
