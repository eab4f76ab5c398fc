#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
static bool cols[10], up[19], down[19];
long long place(long long row) {
    if (row == 10) return 1;
    long long count = 0;
    for (long long c = 0; c < 10; c++) {
        if (!cols[c] && !up[row + c] && !down[row - c + 9]) {
            cols[c] = up[row + c] = down[row - c + 9] = true;
            count += place(row + 1);
            cols[c] = up[row + c] = down[row - c + 9] = false;
        }
    }
    return count;
}
int main(int argc, char **argv) {
    long long rounds = argc > 1 ? atoll(argv[1]) : 1, total = 0;
    for (long long r = 0; r < rounds; r++) total += place(0);
    printf("%lld\n", total / rounds);
    return 0;
}
