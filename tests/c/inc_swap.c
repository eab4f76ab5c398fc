/* tests/test_link_incremental.py, hot swap: C that a running Toy program calls and that calls
   back into Toy. `c_tick` calls `toy_version` (and holds a pointer to it); `c_run` stays in C
   for `n` calls of `toy_step`, pausing `ms` milliseconds after each in Toy's sleep
   (`toy_pause`), so that a thread is inside this object's code when an update comes. */

extern long toy_version(long);
extern long toy_step(long);
extern void toy_pause(long ms);

long (*c_version_ptr)(long) = toy_version;

long c_tick(long i) { return toy_version(i) + 1; }

long c_run(long i, long n, long ms)
{
    long acc = 0;
    for (long k = 0; k < n; k++) {
        acc += toy_step(i + k);
        toy_pause(ms);
    }
    return acc;
}
