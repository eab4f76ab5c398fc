/* A COMMON symbol (built with -fcommon): a tentative definition here and in common_b.c, one
   object in the output. */

long c_common;
long c_common_pair[2];

void c_common_add(long n) { c_common += n; c_common_pair[0] += 1; }
