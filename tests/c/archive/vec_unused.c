/* An archive member nothing needs: it must not be loaded, and loading it would fail the
   link, as it refers to a function nothing defines. */

extern long vec_nowhere(long);

long vec_unused(long x) { return vec_nowhere(x); }
