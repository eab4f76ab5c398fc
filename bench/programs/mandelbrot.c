#include <stdio.h>
int main(void) {
    long long inside = 0;
    for (long long py = 0; py < 400; py++) {
        for (long long px = 0; px < 400; px++) {
            long long cx = px * 12288 / 400 - 8192, cy = py * 8192 / 400 - 4096;
            long long x = 0, y = 0, i = 0;
            while (i < 200 && x * x + y * y <= 67108864) {
                long long xt = (x * x - y * y) / 4096 + cx;
                y = 2 * x * y / 4096 + cy;
                x = xt;
                i++;
            }
            if (i == 200) inside++;
        }
    }
    printf("%lld\n", inside);
    return 0;
}
