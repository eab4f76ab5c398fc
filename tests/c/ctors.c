/* Constructors and destructors, with priorities: constructors run lowest priority first,
   then those without one; destructors in the opposite order. Each reports to Toy. */

extern void toy_note(long);

__attribute__((constructor)) static void ctor_plain(void) { toy_note(3); }
__attribute__((constructor(200))) static void ctor_200(void) { toy_note(2); }
__attribute__((constructor(101))) static void ctor_101(void) { toy_note(1); }

__attribute__((destructor(101))) static void dtor_101(void) { toy_note(-1); }
__attribute__((destructor)) static void dtor_plain(void) { toy_note(-3); }
__attribute__((destructor(200))) static void dtor_200(void) { toy_note(-2); }
