/* test_stop.c: the stop-string rule of mh_stop_matcher (docs/sampling.md,
 * "Stop strings"): the stop that ENDS first in the text wins, ties at the
 * same end go to the LONGER stop, whatever the order of the list and however
 * the text is split into pieces; emitted chunks never end inside a UTF-8
 * character. Checked against a naive whole-text reference on every split.
 * Layer: tests (C); uses engine/sample only. */
#include <stdint.h>
#include "harness.h"
#include "mh/sample.h"

enum { MAXT = 64 };

/* The rule on the whole text at once: the smallest end, then the longest
 * stop; returns the bytes kept before it (len when none matches). */
static size_t naive_cut(const char *t, size_t len, const char *const *stops, int n, int *which)
{
    size_t best_end = SIZE_MAX, best_len = 0, cut = len;
    *which = -1;
    for (int k = 0; k < n; k++) {
        size_t l = strlen(stops[k]);
        for (size_t i = 0; i + l <= len; i++) {
            if (memcmp(t + i, stops[k], l)) continue;
            if (i + l < best_end || (i + l == best_end && l > best_len)) {
                best_end = i + l; best_len = l; cut = i; *which = k;
            }
            break;   /* later occurrences of this stop end later */
        }
    }
    return cut;
}

static int utf8_complete(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t need = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (i + need > n) return 0;
        i += need;
    }
    return 1;
}

/* Feeds t cut at the positions whose bit is set in mask (bit i: a cut
 * after byte i); checks the output equals the reference and that each
 * chunk is whole UTF-8. Returns 0 on a mismatch (printed). */
static int run_split(const char *t, const char *const *stops, int n, uint32_t mask)
{
    size_t len = strlen(t);
    int want_which;
    size_t want = naive_cut(t, len, stops, n, &want_which);
    mh_err err = {0};
    mh_stop_matcher *m = mh_stop_new(stops, n, &err);
    if (!m) return 0;
    char out[MAXT * 2];
    size_t got = 0, start = 0;
    bool stopped = false, chunks_ok = true;
    for (size_t i = 0; i < len && !stopped; i++) {
        if (i + 1 < len && !(mask >> i & 1)) continue;
        const char *e; size_t el;
        mh_stop_push(m, t + start, i + 1 - start, &e, &el, &stopped, &err);
        chunks_ok = chunks_ok && utf8_complete(e, el);
        memcpy(out + got, e, el);
        got += el;
        start = i + 1;
    }
    if (!stopped) {
        const char *e; size_t el;
        mh_stop_flush(m, &e, &el);
        memcpy(out + got, e, el);
        got += el;
    }
    int which = mh_stop_which(m);
    mh_stop_free(m);
    if (got == want && !memcmp(out, t, got) && which == want_which && stopped == (want_which >= 0) && chunks_ok)
        return 1;
    fprintf(stderr, "  text \"%s\" split 0x%x: got %zu bytes (stop %d), want %zu (stop %d)%s\n",
            t, mask, got, which, want, want_which, chunks_ok ? "" : ", a chunk ends inside a character");
    return 0;
}

/* Every split of a text of up to 12 bytes (2^11 ways), else 4096 splits
 * from a fixed stream. */
static int all_splits(const char *t, const char *const *stops, int n)
{
    size_t len = strlen(t);
    uint32_t ways = len <= 12 ? 1u << (len ? len - 1 : 0) : 4096;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (uint32_t w = 0; w < ways; w++) {
        uint32_t mask = w;
        if (len > 12) { x = x * 6364136223846793005ULL + 1; mask = (uint32_t)(x >> 32); }
        if (!run_split(t, stops, n, mask)) return 0;
    }
    return 1;
}

#define SPLITS(text, ...) do { const char *st_[] = {__VA_ARGS__}; \
    CHECK(all_splits(text, st_, (int)(sizeof st_ / sizeof *st_))); } while (0)

/* What the rule gives on fixed inputs (the naive reference itself pinned). */
static void test_rule_examples(void)
{
    const char *a[] = {"abc", "c"}, *b[] = {"c", "abc"}, *c[] = {"abcd", "bc"}, *d[] = {"bcd", "ab"};
    int w;
    CHECK(naive_cut("xabc", 4, a, 2, &w) == 1 && w == 0);   /* same end: longer, list order aside */
    CHECK(naive_cut("xabc", 4, b, 2, &w) == 1 && w == 1);
    CHECK(naive_cut("xabcd", 5, c, 2, &w) == 2 && w == 1);  /* "bc" ends before "abcd" does */
    CHECK(naive_cut("xabcd", 5, d, 2, &w) == 1 && w == 1);  /* "ab" ends first though "bcd" is longer */
}

/* Same end: the longer stop wins whichever comes first in the list. */
static void test_same_end_longest(void)
{
    SPLITS("xabc", "abc", "c");
    SPLITS("xabc", "c", "abc");
    SPLITS("xabc", "bc", "abc", "c");
    SPLITS("xabc", "c", "bc", "abc");
    SPLITS("xabcabc", "c", "xabcabc", "bcab");
}

/* Overlapping stops: the earlier end wins even when it starts later. */
static void test_earliest_end(void)
{
    SPLITS("xabcd", "abcd", "bc");
    SPLITS("xabcd", "bc", "abcd");
    SPLITS("xabcd", "bcd", "ab");
    SPLITS("aaab", "aab", "ab");
    SPLITS("ab ab", "b a", " ab");
    SPLITS("</s</s>", "</s>", "s<");
    SPLITS("ok\n\nUser: hi", "\n\nUser:", "###", "User");
    SPLITS("no stop here", "stop!", "xyz");
}

/* Stops and text with multi-byte characters, split inside them. */
static void test_utf8_stops(void)
{
    SPLITS("x\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" "y", "\xe6\x9c\xac\xe8\xaa\x9e");  /* x日本語y / 本語 */
    SPLITS("\xe6\x97\xa5\xe6\x9b\x9c", "\xe6\x97\xa5\xe6\x9c\xac");                   /* 日曜 / 日本: shared lead byte */
    SPLITS("caf\xc3\xa9!", "\xc3\xa9", "!");                                          /* café! */
    SPLITS("a\xf0\x9f\x98\x80\xf0\x9f\x98\x81z", "\xf0\x9f\x98\x81", "\x81z");       /* 😀😁: stop inside 😁 */
    SPLITS("\xce\xb1\xce\xb2\xce\xb3", "\xce\xb2\xce\xb3", "\xce\xb3");               /* αβγ */
}

int main(void)
{
    (void)test_skipped;   /* no shared data */
    TEST_RUN(test_rule_examples);
    TEST_RUN(test_same_end_longest);
    TEST_RUN(test_earliest_end);
    TEST_RUN(test_utf8_stops);
    return TEST_REPORT();
}
