/* Calls both ways: Toy calls C, which calls back into Toy's exported functions. */

extern long toy_twice(long);
extern long toy_fold(long acc, long x);

long c_add(long a, long b) { return a + b + toy_twice(a); }

/* Toy -> C -> Toy, in a loop, with a value live across each callback */
long c_fold_range(long n) {
    long acc = 0;
    for (long i = 1; i <= n; i++)
        acc = toy_fold(acc, i);
    return acc;
}

/* six arguments: every argument register */
long c_weigh(long a, long b, long c, long d, long e, long f) {
    return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
}
