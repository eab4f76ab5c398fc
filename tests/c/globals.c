/* Globals both ways: C's globals that Toy reads and writes through `extern var`, and Toy's
   exported globals that C reads and writes. */

long c_counter = 40;                /* .data */
long c_zeroed;                      /* .bss (gcc's default -fno-common) */
static long c_private = 7;

extern long toy_total;              /* a Toy `export var` */
extern long toy_table[4];           /* a Toy exported array */

void c_bump(long by) { c_counter += by; c_zeroed -= by; c_private++; }
long c_private_value(void) { return c_private; }

void c_add_to_total(long n) { toy_total += n; }
long c_read_total(void) { return toy_total; }

long c_table_sum(void) {
    long s = 0;
    for (int i = 0; i < 4; i++)
        s += toy_table[i] * (i + 1);
    toy_table[3] = -1;
    return s;
}
