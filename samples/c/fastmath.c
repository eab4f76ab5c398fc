/* C code linked into game.toy: integer square roots, and a loop that calls back into Toy. */
#include <stdbool.h>

long c_calls;  /* how often Toy called into this file; Toy reads it as `extern var` */

long isqrt(long n)
{
    c_calls++;
    long r = 0;
    while ((r + 1) * (r + 1) <= n)
        r++;
    return r;
}

bool is_square(long n)
{
    long r = isqrt(n);
    return r * r == n;
}

extern long toy_score(long level);  /* a Toy function, exported under this name */

long total_score(long levels)
{
    c_calls++;
    long total = 0;
    for (long i = 1; i <= levels; i++)
        total += toy_score(i);
    return total;
}
