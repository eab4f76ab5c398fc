/* C thread-locals, initialised (.tdata) and zero (.tbss), global and static: every thread
   has its own copies. Built in each TLS model: local exec by default, general and local
   dynamic with -fPIC, initial exec, and TLS descriptors (-mtls-dialect=gnu2). */

__thread long c_tls = 5;
__thread long c_tls_zero;
static __thread long c_tls_static = 1000;

long c_tls_step(long n) {
    c_tls += n;
    c_tls_zero += 1;
    c_tls_static += 1;
    return c_tls * 100 + c_tls_zero;
}

long c_tls_static_value(void) { return c_tls_static; }
