#include <stdio.h>
#include <stdlib.h>
long long fib(long long n) { if (n < 2) return n; return fib(n - 1) + fib(n - 2); }
int main(int argc, char **argv) {
    long long rounds = argc > 1 ? atoll(argv[1]) : 1, total = 0;
    for (long long r = 0; r < rounds; r++) total += fib(32);
    printf("%lld\n", total / rounds);
    return 0;
}
