/* Weak definitions, which a strong one elsewhere (strong.c, or a Toy export) beats. */

__attribute__((weak)) long c_hook(void) { return 1; }
__attribute__((weak)) long c_level = 1;

/* calls and reads through the global names, so whichever definition won */
long c_call_hook(void) { return c_hook() * 10 + c_level; }
