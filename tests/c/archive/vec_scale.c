/* An archive member that only another member (vec_add.c's) needs; it comes first in the
   archive, so the linker must search the archive again after loading that one. */

long vec_scale(long x, long k) { return x * k; }
