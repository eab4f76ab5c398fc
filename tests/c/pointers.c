/* C pointers kept in a Toy `int` and passed back: a small arena of nodes, no libc. */

struct node {
    long value;
    struct node *next;
};

static struct node arena[16];
static int used;

struct node *c_push(struct node *list, long value) {
    struct node *n = &arena[used++];
    n->value = value;
    n->next = list;
    return n;
}

long c_list_sum(const struct node *list) {
    long s = 0;
    for (; list; list = list->next)
        s = s * 10 + list->value;
    return s;
}

long c_is_in_arena(const struct node *p) {
    return p >= arena && p < arena + 16;
}
