/* tests/test_link_incremental.py: a member of libinc.a that nothing needs until the Toy
   program declares `extern fn c_late`: a full build loads it; its call of a Toy export is
   then re-patched like the rest when the export moves. */
extern long toy_cb(long);
long c_late(long x) { return toy_cb(x) * 100; }
