/* Data and no code: the object's .text is empty. */
long c_table[4] = {1, 2, 3, 4};
const long c_ro[2] = {5, 6};
long c_zeros[8];
