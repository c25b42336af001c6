/* sched_state.c: a slot's KV state to and from a state file (mh/kv_state.h),
 * for llama-server's /slots/ID?action=save|restore|erase. The copy between
 * the slot and memory happens between two steps (model_mu, then mu: the
 * compute thread's order) while the slot is free; the file I/O runs outside
 * both locks. Layer: engine/sched (pure C11 + pthreads; mh/kv_state.h). */
#include <stdlib.h>
#include <string.h>
#include "mh/kv_state.h"
#include "sched_internal.h"

static void lock_slot(mh_sched *s)
{
    pthread_mutex_lock(&s->model_mu);
    pthread_mutex_lock(&s->mu);
}

static void unlock_slot(mh_sched *s)
{
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->model_mu);
}

/* Checks slot under the locks: it exists and runs nothing. */
static int slot_free(const mh_sched *s, int slot, mh_err *err)
{
    if (slot < 0 || slot >= s->p.n_parallel)
        return mh_err_set(err, MH_ERANGE, "slot %d does not exist (the server has %d: 0..%d)", slot,
                          s->p.n_parallel, s->p.n_parallel - 1);
    if (s->slots[slot].r)
        return mh_err_set(err, MH_EINVAL, "slot %d is processing a request; try again when it is idle", slot);
    return MH_OK;
}

int mh_sched_slot_save(mh_sched *s, int slot, const char *path, int64_t *n_saved, size_t *size, mh_err *err)
{
    if (!s || !path || !*path) return mh_err_set(err, MH_EINVAL, "slot save: a scheduler and a path are required");
    uint8_t id[MH_KV_STATE_ID_BYTES];
    int rc = mh_model_identity(s->m, id, err);
    if (rc) return rc;
    mh_kv_state_info info;
    int32_t *ids = NULL;
    void *rows = NULL;
    lock_slot(s);
    rc = slot_free(s, slot, err);
    sched_slot *sl = rc ? NULL : &s->slots[slot];
    int64_t n = sl ? sl->n_hist : 0;
    if (sl && n > mh_kv_cache_n_past(sl->cache)) n = mh_kv_cache_n_past(sl->cache);
    if (!rc && n < 1) rc = mh_err_set(err, MH_EINVAL, "slot %d holds no tokens to save", slot);
    /* a state file holds base-model rows: its identity names no adapter */
    if (!rc && sl->n_lkey > 0)
        rc = mh_err_set(err, MH_EINVAL, "slot %d's cache was computed with LoRA adapters; only a slot that "
                        "served the base model can be saved", slot);
    if (!rc) {
        mh_kv_state_describe(s->m, id, sl->cache, n, &info);
        ids = malloc(sizeof(int32_t) * (size_t)n);
        rows = malloc(info.rows_bytes);
        if (!ids || !rows) rc = mh_err_set(err, MH_ENOMEM, "slot save: out of memory for %zu bytes", info.rows_bytes);
    }
    if (!rc) {
        memcpy(ids, sl->hist, sizeof(int32_t) * (size_t)n);
        rc = mh_kv_cache_save(sl->cache, n, rows, info.rows_bytes, err);
    }
    unlock_slot(s);
    if (!rc) rc = mh_kv_state_write(path, &info, ids, rows, true, size, err);
    if (!rc && n_saved) *n_saved = n;
    free(ids);
    free(rows);
    return rc;
}

int mh_sched_slot_restore(mh_sched *s, int slot, const char *path, int64_t *n_restored, size_t *size,
                          mh_err *err)
{
    if (!s || !path || !*path) return mh_err_set(err, MH_EINVAL, "slot restore: a scheduler and a path are required");
    if (slot < 0 || slot >= s->p.n_parallel) return slot_free(s, slot, err);
    uint8_t id[MH_KV_STATE_ID_BYTES], *buf = NULL;
    size_t bytes = 0;
    mh_kv_state_info info;
    const uint8_t *ids, *rows;
    mh_err e2 = { 0 };
    int rc = mh_model_identity(s->m, id, err);
    if (!rc) rc = mh_kv_state_read_file(path, &buf, &bytes, err);
    if (!rc && (rc = mh_kv_state_parse(buf, bytes, &info, &ids, &rows, &e2))) mh_err_set(err, rc, "%s: %s", path, e2.msg);
    /* every slot's cache has one type and shape: check against it unlocked */
    if (!rc) rc = mh_kv_state_check(&info, s->m, id, s->slots[slot].cache, path, err);
    if (!rc) {
        lock_slot(s);
        rc = slot_free(s, slot, err);
        sched_slot *sl = &s->slots[slot];
        if (!rc) rc = mh_kv_cache_load(sl->cache, rows, info.rows_bytes, info.n_tokens, info.n_tokens, err);
        if (!rc) {
            memcpy(sl->hist, ids, sizeof(int32_t) * (size_t)info.n_tokens);
            sl->n_hist = info.n_tokens;
            sl->n_lkey = 0;                         /* base-model rows */
            sl->last_used = mh_sched_now_ms();   /* the newest: kept for its follower */
        }
        unlock_slot(s);
    }
    free(buf);
    if (!rc && n_restored) *n_restored = info.n_tokens;
    if (!rc && size) *size = bytes;
    return rc;
}

int mh_sched_slot_erase(mh_sched *s, int slot, int64_t *n_erased, mh_err *err)
{
    if (!s) return mh_err_set(err, MH_EINVAL, "slot erase: a scheduler is required");
    lock_slot(s);
    int rc = slot_free(s, slot, err);
    if (!rc) {
        sched_slot *sl = &s->slots[slot];
        if (n_erased) *n_erased = sl->n_hist;
        mh_kv_cache_truncate(sl->cache, 0);
        sl->n_hist = 0;
    }
    unlock_slot(s);
    return rc;
}
