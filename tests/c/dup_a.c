/* A strong definition of c_dup, as dup_b.c has: linking both is an error. */

long c_dup(void) { return 1; }
