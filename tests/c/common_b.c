/* The other tentative definition of common_a.c's COMMON symbols (a larger array here: the
   largest size wins). */

long c_common;
long c_common_pair[4];

long c_common_get(void) { return c_common * 100 + c_common_pair[0] * 10 + c_common_pair[3]; }
