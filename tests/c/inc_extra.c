/* tests/test_link_incremental.py: an object nothing uses, added to the list of inputs. */
long c_extra(void) { return 42; }
