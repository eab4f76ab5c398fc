/* Another member of libutil.a that nothing calls: it is not linked. */
extern long nowhere(long);
long never_used(long x) { return nowhere(x); }
