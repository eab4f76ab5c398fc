/* A switch dense enough for a jump table: in .rodata, of 32-bit offsets (PIC) or of
   absolute addresses (-fno-pie, R_X86_64_64 and an R_X86_64_32S index). */

long c_dispatch(long op, long x) {
    switch (op) {
    case 0: return x + 1;
    case 1: return x * 3;
    case 2: return x - 7;
    case 3: return x << 2;
    case 4: return x / 2;
    case 5: return -x;
    case 6: return x ^ 0x55;
    case 7: return x % 5;
    case 8: return 1000 + x;
    default: return 0;
    }
}
