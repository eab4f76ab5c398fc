#include <stdio.h>
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
int main(void) { printf("%lld\n", place(0)); return 0; }
