/* test_membw.c: the memory-bandwidth probe reads every word of its buffer
 * each round on every thread count, and refuses buffers too small to mean
 * anything. Layer: tests (C, engine/base). No timing is asserted beyond > 0. */
#include <stdint.h>
#include "harness.h"
#include "mh/membw.h"
#include "mh/threadpool.h"

static void test_reads_every_word(void)
{
    for (int t = 1; t <= 3; t++) {
        mh_threads_set(t);
        mh_membw_result r;
        mh_err err = {0};
        CHECK(mh_membw_probe((size_t)3 << 20, 2, &r, &err) == MH_OK);
        uint64_t words = ((size_t)3 << 20) / 8;
        CHECK(r.buffer_bytes == (size_t)3 << 20);
        CHECK(r.checksum == words * 2 * 0x0101010101010101ull);   /* memset(1) words, 2 rounds */
        CHECK(r.threads == t && r.rounds == 2 && r.bytes_per_s > 0);
    }
}

static void test_rejects_tiny_buffers(void)
{
    mh_membw_result r;
    mh_err err = {0};
    CHECK(mh_membw_probe(4096, 1, &r, &err) == MH_EINVAL);
    CHECK(strstr(err.msg, "at least 1 MiB") != NULL);
}

int main(void)
{
    (void)test_skipped;
    TEST_RUN(test_reads_every_word);
    TEST_RUN(test_rejects_tiny_buffers);
    mh_threads_set(1);
    return TEST_REPORT();
}
