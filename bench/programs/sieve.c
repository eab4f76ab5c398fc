#include <stdio.h>
#include <stdbool.h>
static bool composite[10000000];
int main(void) {
    long long count = 0;
    for (long long i = 2; i < 10000000; i++) {
        if (!composite[i]) {
            count++;
            for (long long j = i * i; j < 10000000; j += i) composite[j] = true;
        }
    }
    printf("%lld\n", count);
    return 0;
}
