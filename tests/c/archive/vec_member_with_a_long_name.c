/* An archive member whose name is longer than 15 characters: ar keeps it in the "//" member
   of long names. */

long vec_long_named(void) { return 77; }
