/* Toy strings reach C as NUL-terminated `const char *`s; C's own string literals live in
   mergeable sections (.rodata.str1.1), reached through section symbols plus addends, from
   code and from a table of pointers. */

/* (a pointer walk: gcc -O2 turns a counting loop into a call of strlen, which no libc
   provides here) */
long c_length(const char *s) {
    const char *p = s;
    while (*p)
        p++;
    return p - s;
}

long c_byte_sum(const char *s) {
    long sum = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        sum += *p;
    return sum;
}

static int same(const char *a, const char *b) {
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static const char *const fruits[] = {"apple", "banana", "cherry", "damson", "elder"};

/* the index of `s` among the literals, or -1 */
long c_fruit(const char *s) {
    for (long i = 0; i < 5; i++)
        if (same(s, fruits[i]))
            return i;
    if (same(s, "fig"))
        return 10;
    if (same(s, "grape"))
        return 11;
    return -1;
}

/* every literal's bytes, summed */
long c_fruit_bytes(void) {
    long sum = 0;
    for (int i = 0; i < 5; i++)
        sum += c_byte_sum(fruits[i]);
    return sum + c_byte_sum("fig") + c_byte_sum("grape");
}
