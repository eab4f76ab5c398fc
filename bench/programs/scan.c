#include <stdio.h>
#include <string.h>
static const char TEXT[] = "the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; the quick ";
int main(void) {
    long long spaces = 0, os = 0;
    long long n = (long long)strlen(TEXT);
    for (long long round = 0; round < 20000; round++) {
        for (long long i = 0; i < n; i++) {
            unsigned char c = (unsigned char)TEXT[i];
            if (c == 32) spaces++;
            else if (c == 111) os++;
        }
    }
    printf("%lld %lld\n", spaces, os);
    return 0;
}
