/* One member of libutil.a: linked only because game.toy calls clamp. */
long clamp(long x, long lo, long hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}
