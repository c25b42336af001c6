/* test_sched_prefix.c: the scheduler's prefix store on stories260K: KV
 * snapshots of finished requests come back for a later prompt sharing their
 * prefix (same greedy output as a cold run), LRU eviction under a byte
 * budget, budget 0 keeps nothing; and the kv_copy calls it is built on. */
#include "harness.h"
#include "mh/loop.h"
#include "mh/sched.h"

static mh_model *g_model;
static mh_loop *g_loop;

#define NEED_MODEL() do { if (!g_model) TEST_SKIP("models/stories260K.gguf missing"); } while (0)

/* n pseudo-random ids in 2..501 from seed (no BOS: prompts of different
 * seeds share no prefix at all). */
static void fill_prompt(int32_t *p, int n, uint32_t seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = 2 + (int32_t)((seed >> 8) % 500);
    }
}

typedef struct result {
    int32_t ids[64];
    int n;
    mh_sched_done_ev done;
} result;

/* Runs one greedy request of max tokens to its end. 0 on success. */
static int run(mh_sched *s, const int32_t *p, int64_t n, int max, result *res)
{
    mh_err err = { 0 };
    memset(res, 0, sizeof *res);
    mh_sched_request r = { .tokens = p, .n_tokens = n, .max_tokens = max };
    mh_sampler_params_init(&r.sampler);
    r.sampler.temperature = 0;
    mh_chan *ch = mh_chan_new(g_loop, &err);
    if (!ch || mh_sched_submit(s, &r, ch, &err) < 0) {
        fprintf(stderr, "  submit: %s\n", err.msg);
        mh_chan_release(ch);
        return -1;
    }
    int rc = -1;
    for (;;) {
        mh_chan_msg m;
        while (!mh_chan_pop(ch, &m)) {
            if (mh_chan_done(ch) || mh_loop_run(g_loop, 1, &err)) goto out;
        }
        if (m.tag == MH_SCHED_EV_TOKEN && m.len == sizeof(mh_sched_token_ev)) {
            mh_sched_token_ev ev;
            memcpy(&ev, m.data, sizeof ev);
            if (res->n < 64) res->ids[res->n++] = ev.id;
            free(m.data);
            continue;
        }
        if (m.tag == MH_SCHED_EV_DONE && m.len == sizeof res->done) {
            memcpy(&res->done, m.data, sizeof res->done);
            rc = 0;
        }
        free(m.data);
        break;
    }
out:
    mh_chan_release(ch);
    return rc;
}

static mh_sched *new_sched(size_t cache_bytes)
{
    mh_sched_params p;
    mh_sched_params_init(&p);
    p.n_parallel = 1;
    p.n_ctx = 256;
    p.cache_bytes = cache_bytes;
    mh_err err = { 0 };
    mh_sched *s = mh_sched_new(g_model, &p, &err);
    if (!s) fprintf(stderr, "  sched_new: %s\n", err.msg);
    return s;
}

/* Bytes of a snapshot of n positions in an f16 cache of g_model. */
static size_t snap_bytes(int64_t n)
{
    mh_kv_cache *c = mh_kv_cache_new(g_model, 4, NULL);
    size_t b = c ? mh_kv_cache_snapshot_bytes(c, 1) * (size_t)n : 0;
    mh_kv_cache_free(c);
    return b;
}

/* A, then B (the slot forgets A), then A' = A's first 32 ids + others:
 * 32 tokens come from the store and the output is a cold run's. */
static void test_store_hit(void)
{
    NEED_MODEL();
    int32_t a[48], b[40], a2[44];
    fill_prompt(a, 48, 1);
    fill_prompt(b, 40, 2);
    fill_prompt(a2, 44, 3);
    memcpy(a2, a, sizeof(int32_t) * 32);
    a2[32] = a[32] == 7 ? 8 : 7;                  /* diverges right after 32 */
    result cold, res;
    mh_sched *s0 = new_sched(0);
    CHECK(s0 && run(s0, a2, 44, 12, &cold) == 0 && cold.n == 12 && cold.done.cached_tokens == 0);
    mh_sched_free(s0);

    mh_sched *s = new_sched(1 << 20);
    CHECK(s);
    CHECK(run(s, a, 48, 6, &res) == 0 && res.done.cached_tokens == 0);
    CHECK(run(s, b, 40, 6, &res) == 0 && res.done.cached_tokens == 0);
    CHECK(run(s, a2, 44, 12, &res) == 0);
    CHECK_MSG(res.done.cached_tokens == 32, "cached %lld", (long long)res.done.cached_tokens);
    CHECK(res.n == cold.n);
    for (int k = 0; k < res.n && k < cold.n; k++) CHECK(res.ids[k] == cold.ids[k]);
    mh_sched_stats st;
    mh_sched_stats_get(s, &st);
    CHECK(st.store_hits == 1 && st.store_tokens == 32);
    CHECK(st.prefix_hits == 1 && st.prefix_tokens == 32);
    CHECK_MSG(st.store_entries == 3, "entries %lld", (long long)st.store_entries);
    CHECK(st.store_bytes == (int64_t)snap_bytes(48 + 5 + 40 + 5 + 44 + 11));
    CHECK(st.store_evictions == 0 && st.store_budget == 1 << 20);
    /* the same prompt again: the slot itself serves it, the store is not asked */
    CHECK(run(s, a2, 44, 12, &res) == 0 && res.done.cached_tokens == 43);
    for (int k = 0; k < res.n && k < cold.n; k++) CHECK(res.ids[k] == cold.ids[k]);
    mh_sched_stats_get(s, &st);
    CHECK(st.store_hits == 1 && st.prefix_hits == 2 && st.store_entries == 3);
    mh_sched_free(s);
}

/* Room for two 43-position snapshots: A, B, C evicts A; B' hits B (now the
 * most recent), its own snapshot evicts C, not B; C' and A' miss. */
static void test_store_lru(void)
{
    NEED_MODEL();
    int32_t a[40], b[40], c[40], q[40];
    fill_prompt(a, 40, 11);
    fill_prompt(b, 40, 12);
    fill_prompt(c, 40, 13);
    mh_sched *s = new_sched(snap_bytes(43) * 5 / 2);
    CHECK(s);
    result res;
    mh_sched_stats st;
    CHECK(run(s, a, 40, 4, &res) == 0 && run(s, b, 40, 4, &res) == 0 && run(s, c, 40, 4, &res) == 0);
    mh_sched_stats_get(s, &st);
    CHECK_MSG(st.store_entries == 2 && st.store_evictions == 1, "entries %lld evictions %lld",
              (long long)st.store_entries, (long long)st.store_evictions);
    fill_prompt(q, 40, 21);
    memcpy(q, b, sizeof(int32_t) * 30);
    CHECK(run(s, q, 40, 4, &res) == 0 && res.done.cached_tokens == 30);
    mh_sched_stats_get(s, &st);
    CHECK(st.store_entries == 2 && st.store_evictions == 2 && st.store_hits == 1);
    fill_prompt(q, 40, 22);
    memcpy(q, c, sizeof(int32_t) * 30);
    CHECK(run(s, q, 40, 4, &res) == 0);
    CHECK_MSG(res.done.cached_tokens == 0, "C' reused %lld", (long long)res.done.cached_tokens);
    fill_prompt(q, 40, 23);
    memcpy(q, a, sizeof(int32_t) * 30);
    CHECK(run(s, q, 40, 4, &res) == 0 && res.done.cached_tokens == 0);
    mh_sched_stats_get(s, &st);
    CHECK(st.store_hits == 1 && st.store_bytes <= (int64_t)(snap_bytes(43) * 5 / 2));
    mh_sched_free(s);
}

/* Budget 0: nothing is kept; a snapshot larger than the budget is skipped. */
static void test_store_off(void)
{
    NEED_MODEL();
    int32_t a[40], b[40], a2[40];
    fill_prompt(a, 40, 31);
    fill_prompt(b, 40, 32);
    fill_prompt(a2, 40, 33);
    memcpy(a2, a, sizeof(int32_t) * 30);
    result res;
    mh_sched_stats st;
    for (int round = 0; round < 2; round++) {
        mh_sched *s = new_sched(round == 0 ? 0 : snap_bytes(20));
        CHECK(s);
        CHECK(run(s, a, 40, 4, &res) == 0 && run(s, b, 40, 4, &res) == 0);
        CHECK(run(s, a2, 40, 4, &res) == 0 && res.done.cached_tokens == 0);
        mh_sched_stats_get(s, &st);
        CHECK(st.store_entries == 0 && st.store_bytes == 0 && st.store_hits == 0);
        mh_sched_free(s);
    }
}

/* copy_prefix, save and load move rows exactly and refuse bad sizes. */
static void test_kv_copy(void)
{
    NEED_MODEL();
    mh_err err = { 0 };
    int32_t p[24];
    fill_prompt(p, 24, 41);
    mh_kv_cache *a = mh_kv_cache_new(g_model, 32, &err), *b = mh_kv_cache_new(g_model, 32, &err);
    mh_kv_cache *f32c = mh_kv_cache_new_type(g_model, 32, MH_DTYPE_F32, &err);
    CHECK(a && b && f32c);
    int64_t nv = mh_model_hparams(g_model)->n_vocab;
    float *l1 = malloc(sizeof(float) * (size_t)nv), *l2 = malloc(sizeof(float) * (size_t)nv);
    CHECK(mh_model_forward(g_model, a, p, 24, l1, false, &err) == MH_OK);
    /* b gets a's first 20 rows, then both run the last 4 tokens again */
    CHECK(mh_kv_cache_copy_prefix(b, a, 20, &err) == MH_OK && mh_kv_cache_n_past(b) == 20);
    mh_kv_cache_truncate(a, 20);
    CHECK(mh_model_forward(g_model, a, p + 20, 4, l1, false, &err) == MH_OK);
    CHECK(mh_model_forward(g_model, b, p + 20, 4, l2, false, &err) == MH_OK);
    CHECK(memcmp(l1, l2, sizeof(float) * (size_t)nv) == 0);
    /* a snapshot of 24 positions, 10 of them loaded into b */
    size_t sz = mh_kv_cache_snapshot_bytes(a, 24);
    void *buf = malloc(sz);
    CHECK(sz > 0 && mh_kv_cache_save(a, 24, buf, sz, &err) == MH_OK);
    CHECK(mh_kv_cache_load(b, buf, sz, 24, 10, &err) == MH_OK && mh_kv_cache_n_past(b) == 10);
    mh_kv_cache_truncate(a, 10);
    CHECK(mh_model_forward(g_model, a, p + 10, 14, l1, false, &err) == MH_OK);
    CHECK(mh_model_forward(g_model, b, p + 10, 14, l2, false, &err) == MH_OK);
    CHECK(memcmp(l1, l2, sizeof(float) * (size_t)nv) == 0);
    /* misuse */
    CHECK(mh_kv_cache_copy_prefix(b, a, 25, &err) == MH_ERANGE);
    CHECK(mh_kv_cache_copy_prefix(f32c, a, 4, &err) == MH_EINVAL);
    CHECK(mh_kv_cache_save(a, 30, buf, sz, &err) == MH_ERANGE);
    CHECK(mh_kv_cache_save(a, 24, buf, sz - 1, &err) == MH_EINVAL);
    CHECK(mh_kv_cache_load(b, buf, sz - 1, 24, 10, &err) == MH_EINVAL);
    CHECK(mh_kv_cache_load(b, buf, sz, 24, 25, &err) == MH_ERANGE);
    CHECK(mh_kv_cache_load(f32c, buf, sz, 24, 10, &err) == MH_EINVAL);    /* f32 rows are larger */
    CHECK(mh_kv_cache_snapshot_bytes(a, 0) == 0 && mh_kv_cache_snapshot_bytes(NULL, 4) == 0);
    free(buf);
    free(l1);
    free(l2);
    mh_kv_cache_free(a);
    mh_kv_cache_free(b);
    mh_kv_cache_free(f32c);
}

int main(void)
{
    char mp[4096];
    mh_err err = { 0 };
    g_loop = mh_loop_new(&err);
    if (!g_loop) { fprintf(stderr, "loop: %s\n", err.msg); return 1; }
    if (test_data_path("models/stories260K.gguf", mp) && mh_model_load(mp, &g_model, &err)) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 1;
    }
    TEST_RUN(test_store_hit);
    TEST_RUN(test_store_lru);
    TEST_RUN(test_store_off);
    TEST_RUN(test_kv_copy);
    mh_model_free(g_model);
    mh_loop_release(g_loop);
    return TEST_REPORT();
}
