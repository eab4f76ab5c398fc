/* C `bool`s both ways. The ABI defines only the low byte of a bool in a register: here the
   rest of rax (and of rdi) holds garbage on purpose, which Toy must ignore. */

#include <stdbool.h>

extern long toy_garbage(long);

/* rax still holds toy_garbage's result (0x7700) when `setg al` sets the low byte */
bool c_is_big(long x) {
    toy_garbage(x);
    return x > 5;
}

bool c_not(bool b) {
    toy_garbage(0);
    return !b;
}

/* toy_pick(bool) called as if it took a long: bits above the low byte are set */
long toy_pick_raw(long) __asm__("toy_pick");
long c_call_pick(long garbage) { return toy_pick_raw(garbage); }

/* a Toy function returning bool, called by C as one */
extern bool toy_is_odd(long);
long c_count_odd(long n) {
    long count = 0;
    for (long i = 0; i < n; i++)
        count += toy_is_odd(i);
    return count;
}
