/* The second strong definition of c_dup (see dup_a.c). */

long c_dup(void) { return 2; }
