/* The strong definitions that beat weak.c's. */

long c_hook(void) { return 2; }
long c_level = 2;
