/* tests/test_link_incremental.py, random edits: C calling Toy's exports (directly, and through
   a pointer in .data), reading an exported Toy var, and thread-locals on both sides: C's own
   (.tdata and .tbss, the first atoms of the program's TLS image) and a Toy `export threadlocal
   var`, whose offsets from the thread pointer follow the TLS layout when the Toy program adds
   or removes thread-locals. Built in several ways (-O2; -fPIC: general dynamic TLS and the
   GOT; -mtls-dialect=gnu2: TLS descriptors). */

extern long toy_step(long);
extern long toy_counter;
extern __thread long toy_tl;

long (*c_step_ptr)(long) = toy_step;
__thread long c_tl = 7;
__thread long c_tl_zero;

long c_apply(long x)
{
    return toy_step(x) * 3 + c_step_ptr(x + 1) + toy_counter;
}

long c_tls_step(long n)
{
    c_tl += n;
    c_tl_zero++;
    toy_tl += 1;
    return c_tl * 1000 + c_tl_zero * 10 + toy_tl;
}
