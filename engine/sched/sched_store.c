/* sched_store.c: the scheduler's prefix store: KV snapshots of finished
 * sequences kept under a byte budget with LRU eviction (mlx-lm's prompt
 * cache, vLLM's automatic prefix caching), so a request whose prompt starts
 * like an earlier one reloads those rows instead of prefilling them.
 * Layer: engine/sched (pure C11; mh/model.h kv_copy). Compute thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sched_internal.h"

#define STORE_FRACTION 16                    /* 1/16 of the memory available now */
#define STORE_MIN ((size_t)16 << 20)
#define STORE_MAX ((size_t)512 << 20)        /* the former fixed default */

/* MemAvailable (what the kernel could give without swapping), else free
 * pages; 0 when neither can be read. */
static size_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    if (kb) return (size_t)kb << 10;
    long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (size_t)pages * (size_t)size : 0;
}

/* A prefix store grows up to its budget under steady traffic (RSS climbs
 * with it), so the default is a slice of the memory free at start: 1/16,
 * within [16 MiB, 512 MiB]. */
size_t mh_sched_store_default_budget(void)
{
    size_t avail = mem_available(), b = avail / STORE_FRACTION;
    if (!avail) return STORE_MIN * 4;
    return b < STORE_MIN ? STORE_MIN : b > STORE_MAX ? STORE_MAX : b;
}

static int64_t shared_prefix(const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    int64_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

sched_entry *mh_sched_store_match(const sched_store *st, const int32_t *tokens, int64_t n, int64_t *common)
{
    sched_entry *best = NULL;
    int64_t best_n = 0;
    for (sched_entry *e = st->head; e; e = e->next) {
        int64_t k = shared_prefix(e->tokens, e->n, tokens, n);
        if (k > best_n) { best = e; best_n = k; }   /* ties: the more recent (seen first) */
    }
    *common = best_n;
    return best;
}

static void unlink_entry(sched_store *st, sched_entry *e)
{
    if (e->prev) e->prev->next = e->next;
    else st->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else st->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(sched_store *st, sched_entry *e)
{
    e->prev = NULL;
    e->next = st->head;
    if (st->head) st->head->prev = e;
    st->head = e;
    if (!st->tail) st->tail = e;
}

void mh_sched_store_touch(sched_store *st, sched_entry *e)
{
    if (st->head == e) return;
    unlink_entry(st, e);
    push_front(st, e);
}

static void drop(sched_store *st, sched_entry *e)
{
    unlink_entry(st, e);
    st->bytes -= e->bytes;
    st->n--;
    free(e->tokens);
    free(e->kv);
    free(e);
}

/* True when an entry already holds tokens[0..n) (touching it), after
 * dropping the entries that tokens extend (they would never win a match). */
static bool covered(sched_store *st, const int32_t *tokens, int64_t n)
{
    for (sched_entry *e = st->head, *next; e; e = next) {
        next = e->next;
        int64_t k = shared_prefix(e->tokens, e->n, tokens, n);
        if (k == n) { mh_sched_store_touch(st, e); return true; }
        if (k == e->n) drop(st, e);
    }
    return false;
}

void mh_sched_store_put(sched_store *st, const int32_t *tokens, int64_t n, const mh_kv_cache *c)
{
    if (!st->budget || n < SCHED_STORE_MIN || n > mh_kv_cache_n_past(c)) return;
    size_t bytes = mh_kv_cache_snapshot_bytes(c, n);
    if (bytes > st->budget || covered(st, tokens, n)) return;
    while (st->tail && st->bytes + bytes > st->budget) {
        drop(st, st->tail);
        st->evictions++;
    }
    sched_entry *e = calloc(1, sizeof *e);
    if (!e) return;
    e->tokens = malloc(sizeof(int32_t) * (size_t)n);
    e->kv = malloc(bytes);
    if (!e->tokens || !e->kv || mh_kv_cache_save(c, n, e->kv, bytes, NULL) != MH_OK) {
        free(e->tokens);               /* a cache: losing an entry only costs a prefill */
        free(e->kv);
        free(e);
        return;
    }
    memcpy(e->tokens, tokens, sizeof(int32_t) * (size_t)n);
    e->n = n;
    e->bytes = bytes;
    push_front(st, e);
    st->bytes += bytes;
    st->n++;
}

void mh_sched_store_free(sched_store *st)
{
    while (st->head) drop(st, st->head);
}
