/* Refers to a function nothing defines: the link must fail, naming this object. */

extern long c_nowhere(long);

long c_calls_nowhere(long x) { return c_nowhere(x) + 1; }
