/* test_kv_state.c: KV state files (mh/kv_state.h) on stories260K: a saved
 * cache restores to bitwise the same next-token logits; every truncation,
 * a flipped byte anywhere and foreign files are refused without touching the
 * cache; scheduler slots save and restore; the prefix store's disk tier
 * brings a finished prefix back in a new scheduler (ASan covers all of it). */
#include <sys/stat.h>
#include "harness.h"
#include "mh/kv_state.h"
#include "mh/loop.h"
#include "mh/sched.h"

static mh_model *g_model;
static mh_loop *g_loop;
static char g_dir[64];

#define NEED_MODEL() do { if (!g_model) TEST_SKIP("models/stories260K.gguf missing"); } while (0)

static void fill_prompt(int32_t *p, int n, uint32_t seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = 2 + (int32_t)((seed >> 8) % 500);
    }
}

static const char *tmp_path(const char *name)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    return path;
}

static void write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) { fwrite(b, 1, n, f); fclose(f); }
}

static void test_round_trip(void)
{
    NEED_MODEL();
    mh_err err = { 0 };
    int32_t p[40];
    fill_prompt(p, 40, 7);
    int64_t nv = mh_model_hparams(g_model)->n_vocab;
    float *l1 = malloc(sizeof(float) * (size_t)nv), *l2 = malloc(sizeof(float) * (size_t)nv);
    mh_kv_cache *a = mh_kv_cache_new(g_model, 64, &err), *b = mh_kv_cache_new(g_model, 64, &err);
    CHECK(a && b && l1 && l2);
    CHECK(mh_model_forward(g_model, a, p, 39, NULL, false, &err) == MH_OK);
    size_t size = 0;
    CHECK_MSG(mh_kv_state_save(tmp_path("a.mhkv"), g_model, a, p, 39, &size, &err) == MH_OK, "%s", err.msg);
    CHECK(size == MH_KV_STATE_HEADER + 4 * 39 + mh_kv_cache_snapshot_bytes(a, 39) + 32);
    int32_t *ids = NULL;
    int64_t n = 0;
    CHECK_MSG(mh_kv_state_load(tmp_path("a.mhkv"), g_model, NULL, b, -1, &ids, &n, NULL, &err) == MH_OK, "%s", err.msg);
    CHECK(n == 39 && mh_kv_cache_n_past(b) == 39 && memcmp(ids, p, sizeof(int32_t) * 39) == 0);
    free(ids);
    CHECK(mh_model_forward(g_model, a, p + 39, 1, l1, false, &err) == MH_OK);
    CHECK(mh_model_forward(g_model, b, p + 39, 1, l2, false, &err) == MH_OK);
    CHECK(memcmp(l1, l2, sizeof(float) * (size_t)nv) == 0);
    /* the first n_use positions only */
    CHECK(mh_kv_state_load(tmp_path("a.mhkv"), g_model, NULL, b, 10, NULL, &n, NULL, &err) == MH_OK);
    CHECK(n == 10 && mh_kv_cache_n_past(b) == 10);
    free(l1);
    free(l2);
    mh_kv_cache_free(a);
    mh_kv_cache_free(b);
}

/* Every prefix of a good file, and every single flipped byte, is refused
 * and leaves the cache as it was. */
static void test_bad_files(void)
{
    NEED_MODEL();
    mh_err err = { 0 };
    int32_t p[12];
    fill_prompt(p, 12, 3);
    mh_kv_cache *a = mh_kv_cache_new(g_model, 32, &err), *b = mh_kv_cache_new(g_model, 32, &err);
    CHECK(a && b);
    CHECK(mh_model_forward(g_model, a, p, 12, NULL, false, &err) == MH_OK);
    CHECK(mh_kv_state_save(tmp_path("g.mhkv"), g_model, a, p, 12, NULL, &err) == MH_OK);
    CHECK(mh_model_forward(g_model, b, p, 5, NULL, false, &err) == MH_OK);
    uint8_t *good;
    size_t size;
    CHECK(mh_kv_state_read_file(tmp_path("g.mhkv"), &good, &size, &err) == MH_OK);
    mh_kv_state_info info;
    const uint8_t *ids, *rows;
    int bad = 0;
    for (size_t cut = 0; cut < size; cut++)
        bad += mh_kv_state_parse(good, cut, &info, &ids, &rows, &err) != MH_EFORMAT;
    CHECK_MSG(bad == 0, "%d truncations accepted", bad);
    for (size_t at = 0; at < size; at++) {
        good[at] ^= 0x10;
        bad += mh_kv_state_parse(good, size, &info, &ids, &rows, &err) == MH_OK;
        if (at % 97 == 0) {     /* through the file path too: the cache stays */
            write_file(tmp_path("b.mhkv"), good, size);
            bad += mh_kv_state_load(tmp_path("b.mhkv"), g_model, NULL, b, -1, NULL, NULL, NULL, &err) == MH_OK;
            bad += mh_kv_cache_n_past(b) != 5;
        }
        good[at] ^= 0x10;
    }
    CHECK_MSG(bad == 0, "%d flipped files accepted", bad);
    CHECK(mh_kv_state_parse(good, size, &info, &ids, &rows, &err) == MH_OK && info.n_tokens == 12);
    /* the same file for a q8_0 cache of another model shape is refused by check */
    mh_kv_cache *f32c = mh_kv_cache_new_type(g_model, 32, MH_DTYPE_F32, &err);
    CHECK(f32c);
    CHECK(mh_kv_state_check(&info, g_model, NULL, f32c, "g", &err) == MH_EINVAL);
    CHECK(strstr(err.msg, "holds a f16 KV cache; this cache is f32") != NULL);
    uint8_t other[MH_KV_STATE_ID_BYTES] = { 1 };
    CHECK(mh_kv_state_check(&info, g_model, other, b, "g", &err) == MH_EINVAL);
    CHECK(strstr(err.msg, "was saved from another model") != NULL);
    free(good);
    mh_kv_cache_free(a);
    mh_kv_cache_free(b);
    mh_kv_cache_free(f32c);
}

typedef struct result { int n; mh_sched_done_ev done; } result;

static int run(mh_sched *s, const int32_t *p, int64_t n, int max, result *res)
{
    mh_err err = { 0 };
    memset(res, 0, sizeof *res);
    mh_sched_request r = { .tokens = p, .n_tokens = n, .max_tokens = max };
    mh_sampler_params_init(&r.sampler);
    r.sampler.temperature = 0;
    mh_chan *ch = mh_chan_new(g_loop, &err);
    if (!ch || mh_sched_submit(s, &r, ch, &err) < 0) { mh_chan_release(ch); return -1; }
    int rc = -1;
    for (;;) {
        mh_chan_msg m;
        while (!mh_chan_pop(ch, &m))
            if (mh_chan_done(ch) || mh_loop_run(g_loop, 1, &err)) goto out;
        int last = m.tag == MH_SCHED_EV_DONE;
        if (last && m.len == sizeof res->done) { memcpy(&res->done, m.data, sizeof res->done); rc = 0; }
        res->n += !last;
        free(m.data);
        if (last) break;
    }
out:
    mh_chan_release(ch);
    return rc;
}

static mh_sched *new_sched(int parallel, size_t cache_bytes, const char *dir)
{
    mh_sched_params p;
    mh_sched_params_init(&p);
    p.n_parallel = parallel;
    p.n_ctx = 128;
    p.cache_bytes = cache_bytes;
    p.cache_dir = dir;
    p.cache_dir_bytes = 1 << 20;
    mh_err err = { 0 };
    mh_sched *s = mh_sched_new(g_model, &p, &err);
    if (!s) fprintf(stderr, "  sched_new: %s\n", err.msg);
    return s;
}

static void test_slots(void)
{
    NEED_MODEL();
    mh_err err = { 0 };
    int32_t p[60];
    fill_prompt(p, 60, 11);
    mh_sched *s = new_sched(2, 0, NULL);
    CHECK(s);
    result r1, r2;
    CHECK(run(s, p, 50, 4, &r1) == 0);
    int64_t n = 0;
    size_t bytes = 0;
    int slot = mh_sched_slot_save(s, 0, tmp_path("slot.mhkv"), &n, &bytes, &err) == MH_OK ? 0 : 1;
    if (slot == 1) CHECK_MSG(mh_sched_slot_save(s, 1, tmp_path("slot.mhkv"), &n, &bytes, &err) == MH_OK, "%s", err.msg);
    CHECK(n >= 50 && bytes > 0);
    CHECK(mh_sched_slot_erase(s, slot, &n, &err) == MH_OK && n >= 50);
    CHECK(mh_sched_slot_save(s, slot, tmp_path("x.mhkv"), &n, &bytes, &err) == MH_EINVAL);   /* empty now */
    CHECK(mh_sched_slot_restore(s, 5, tmp_path("slot.mhkv"), &n, &bytes, &err) == MH_ERANGE);
    CHECK(mh_sched_slot_restore(s, 1 - slot, tmp_path("nope.mhkv"), &n, &bytes, &err) == MH_EIO);
    CHECK_MSG(mh_sched_slot_restore(s, 1 - slot, tmp_path("slot.mhkv"), &n, &bytes, &err) == MH_OK, "%s", err.msg);
    fill_prompt(p + 50, 10, 99);
    CHECK(run(s, p, 60, 4, &r2) == 0);
    CHECK_MSG(r2.done.cached_tokens == 50, "cached %lld", (long long)r2.done.cached_tokens);
    mh_sched_free(s);
}

static void test_disk_store(void)
{
    NEED_MODEL();
    int32_t p[60];
    fill_prompt(p, 60, 21);
    result r;
    const char *dir = tmp_path("cache");
    mh_sched *s = new_sched(1, 1 << 20, dir);
    CHECK(s);
    CHECK(run(s, p, 48, 2, &r) == 0 && r.done.cached_tokens == 0);
    mh_sched_stats st;
    mh_sched_stats_get(s, &st);
    CHECK(st.store_disk_entries == 1 && st.store_disk_bytes > 0);
    mh_sched_free(s);
    s = new_sched(1, 1 << 20, dir);
    CHECK(s);
    mh_sched_stats_get(s, &st);
    CHECK(st.store_entries == 1 && st.store_disk_entries == 1);
    fill_prompt(p + 40, 20, 5);
    CHECK(run(s, p, 60, 2, &r) == 0);
    CHECK_MSG(r.done.cached_tokens == 40, "cached %lld", (long long)r.done.cached_tokens);
    mh_sched_stats_get(s, &st);
    CHECK(st.store_disk_hits == 1 && st.store_hits == 1);
    mh_sched_free(s);
    mh_sched_params p0;
    mh_sched_params_init(&p0);
    p0.cache_dir = dir;            /* a disk tier needs the memory one */
    mh_err err = { 0 };
    CHECK(mh_sched_new(g_model, &p0, &err) == NULL && strstr(err.msg, "cache_bytes > 0"));
}

int main(void)
{
    char mp[4096];
    mh_err err = { 0 };
    g_loop = mh_loop_new(&err);
    snprintf(g_dir, sizeof g_dir, "/tmp/mh-kvstate-XXXXXX");
    if (!g_loop || !mkdtemp(g_dir)) { fprintf(stderr, "setup failed\n"); return 1; }
    if (test_data_path("models/stories260K.gguf", mp) && mh_model_load(mp, &g_model, &err)) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 1;
    }
    TEST_RUN(test_round_trip);
    TEST_RUN(test_bad_files);
    TEST_RUN(test_slots);
    TEST_RUN(test_disk_store);
    mh_model_free(g_model);
    mh_loop_release(g_loop);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", g_dir);
    return TEST_REPORT();
}
