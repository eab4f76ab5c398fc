/* A thread-local defined in another object (tls.c): initial exec from an executable's
   code, general dynamic with -fPIC. */

extern __thread long c_tls;

long c_tls_peek(void) { return c_tls; }
