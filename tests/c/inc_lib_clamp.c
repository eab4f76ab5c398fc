/* tests/test_link_incremental.py: a member of libinc.a that the Toy program needs from the
   start. */
long c_clamp(long x, long lo, long hi) { return x < lo ? lo : x > hi ? hi : x; }
