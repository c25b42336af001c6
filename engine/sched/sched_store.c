/* sched_store.c: the scheduler's prefix store: KV snapshots of finished
 * sequences kept under a byte budget with LRU eviction (mlx-lm's prompt
 * cache, vLLM's automatic prefix caching), so a request whose prompt starts
 * like an earlier one reloads those rows instead of prefilling them. With a
 * cache dir each entry is also a state file (mh/kv_state.h), so the next
 * server finds it again, and past the memory budget an entry keeps its file.
 * Layer: engine/sched (pure C11 + POSIX; mh/model.h kv_copy, mh/kv_state.h).
 * Compute thread only (open: before it starts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include "mh/fs.h"
#include "mh/kv_state.h"
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

/* Forgets e's file: removed from disk when remove is set. */
static void forget_file(sched_store *st, sched_entry *e, bool remove)
{
    if (!e->path) return;
    if (remove) unlink(e->path);
    st->disk_bytes -= e->file_bytes;
    st->disk_n--;
    free(e->path);
    e->path = NULL;
    e->file_bytes = 0;
}

/* Frees e; its file is removed with it unless keep_file (the store closes). */
static void drop_entry(sched_store *st, sched_entry *e, bool keep_file)
{
    unlink_entry(st, e);
    forget_file(st, e, !keep_file);
    st->bytes -= e->bytes;
    st->n--;
    free(e->tokens);
    free(e->kv);
    free(e);
}

static void drop(sched_store *st, sched_entry *e) { drop_entry(st, e, false); }

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

/* Frees memory for bytes more, least recently used first: an entry with a
 * file keeps it (spilled, restorable from disk), others go. */
static void make_room(sched_store *st, size_t bytes)
{
    sched_entry *e = st->tail;
    while (e && st->bytes + bytes > st->budget) {
        sched_entry *prev = e->prev;
        if (e->kv) {
            st->evictions++;
            if (!e->path) {
                drop(st, e);
            } else {
                st->bytes -= e->bytes;
                free(e->kv);
                e->kv = NULL;
                e->bytes = 0;
            }
        }
        e = prev;
    }
}

/* ===== the disk tier ===== */

/* Removes the least recently used files past the disk budget. */
static void trim_disk(sched_store *st)
{
    for (sched_entry *e = st->tail, *prev; e && st->disk_bytes > st->disk_budget; e = prev) {
        prev = e->prev;
        if (!e->path) continue;
        if (e->kv) forget_file(st, e, true);
        else drop(st, e);
    }
}

/* <dir>/<64-bit FNV-1a of the ids>-<n>.mhkv: one name per sequence. */
static char *entry_path(const sched_store *st, const int32_t *tokens, int64_t n)
{
    uint64_t h = 14695981039346656037ull;
    const uint8_t *b = (const uint8_t *)tokens;
    for (size_t i = 0; i < sizeof(int32_t) * (size_t)n; i++) h = (h ^ b[i]) * 1099511628211ull;
    size_t cap = strlen(st->dir) + 48;
    char *p = malloc(cap);
    if (p) snprintf(p, cap, "%s/%016llx-%lld.mhkv", st->dir, (unsigned long long)h, (long long)n);
    return p;
}

/* Writes e (just put, rows in memory) as a state file; a failure costs only
 * persistence (the entry stays in memory). Not fsynced: a torn file fails
 * its checksum at restore and is dropped then. */
static void spill(sched_store *st, sched_entry *e, const mh_kv_cache *c)
{
    if (!st->dir || !st->disk_budget) return;
    mh_kv_state_info info;
    mh_kv_state_describe(st->m, st->id, c, e->n, &info);
    size_t size = 0;
    char *path = entry_path(st, e->tokens, e->n);
    size_t want = MH_KV_STATE_HEADER + sizeof(int32_t) * (size_t)e->n + info.rows_bytes + 32;
    if (!path || info.rows_bytes != e->bytes || want > st->disk_budget ||
        mh_kv_state_write(path, &info, e->tokens, e->kv, false, &size, NULL) != MH_OK) {
        free(path);
        return;
    }
    e->path = path;
    e->file_bytes = size;
    st->disk_bytes += size;
    st->disk_n++;
    trim_disk(st);
}

int mh_sched_store_load(sched_store *st, sched_entry *e, mh_kv_cache *c, int64_t n)
{
    if (e->kv) return mh_kv_cache_load(c, e->kv, e->bytes, e->n, n, NULL);
    int32_t *ids = NULL;
    int64_t got = 0;
    int rc = e->path ? mh_kv_state_load(e->path, st->m, st->id, c, n, &ids, &got, NULL, NULL) : MH_EINVAL;
    if (rc == MH_OK && (got != n || memcmp(ids, e->tokens, sizeof(int32_t) * (size_t)n) != 0)) rc = MH_EFORMAT;
    free(ids);
    if (rc == MH_OK) {
        st->disk_hits++;
        return MH_OK;
    }
    /* a file that fails its checks goes; the entry matches nothing from now
     * on (n 0) and the next put drops it (another slot may point at it) */
    forget_file(st, e, true);
    e->n = 0;
    return rc;
}

void mh_sched_store_put(sched_store *st, const int32_t *tokens, int64_t n, const mh_kv_cache *c)
{
    if (!st->budget || n < SCHED_STORE_MIN || n > mh_kv_cache_n_past(c)) return;
    size_t bytes = mh_kv_cache_snapshot_bytes(c, n);
    if (bytes > st->budget || covered(st, tokens, n)) return;
    make_room(st, bytes);
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
    spill(st, e, c);
}

void mh_sched_store_free(sched_store *st)
{
    while (st->head) drop_entry(st, st->head, true);    /* files stay for the next run */
    free(st->dir);
    st->dir = NULL;
}

/* ===== opening the disk tier ===== */

typedef struct found { sched_entry *e; double mtime; } found;

static int by_mtime_desc(const void *a, const void *b)
{
    double x = ((const found *)a)->mtime, y = ((const found *)b)->mtime;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* An entry for the state file at path (ids only), or NULL when the file is
 * not one of this model's (it is removed: the folder is this model's). */
static sched_entry *index_file(sched_store *st, const char *path, mh_dtype type, double *mtime)
{
    mh_kv_state_info info;
    int32_t *ids = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return NULL;
    if (mh_kv_state_peek(path, &info, &ids, NULL) != MH_OK || info.type != type ||
        memcmp(info.model_id, st->id, sizeof st->id) != 0) {
        free(ids);
        unlink(path);
        return NULL;
    }
    sched_entry *e = calloc(1, sizeof *e);
    char *p = strdup(path);
    if (!e || !p) { free(e); free(p); free(ids); return NULL; }
    e->tokens = ids;
    e->n = info.n_tokens;
    e->path = p;
    e->file_bytes = (size_t)sb.st_size;
    *mtime = (double)sb.st_mtim.tv_sec + sb.st_mtim.tv_nsec * 1e-9;
    return e;
}

/* Indexes dir's *.mhkv files, most recently written first; removes temp
 * files a dead writer left. */
static int index_dir(sched_store *st, mh_dtype type, mh_err *err)
{
    DIR *d = opendir(st->dir);
    if (!d) return mh_err_set(err, MH_EIO, "cache dir %s: %s", st->dir, strerror(errno));
    found *list = NULL;
    size_t n = 0, cap = 0;
    char path[4200];
    for (struct dirent *de; (de = readdir(d));) {
        snprintf(path, sizeof path, "%s/%s", st->dir, de->d_name);
        long pid = mh_fs_temp_pid(de->d_name);
        if (pid && !mh_fs_pid_alive(pid)) unlink(path);
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".mhkv") != 0) continue;
        if (n == cap) {
            found *bigger = realloc(list, sizeof *list * (cap = cap ? 2 * cap : 64));
            if (!bigger) break;
            list = bigger;
        }
        double mtime = 0;
        sched_entry *e = index_file(st, path, type, &mtime);
        if (e) list[n++] = (found){ e, mtime };
    }
    closedir(d);
    if (n) qsort(list, n, sizeof *list, by_mtime_desc);
    for (size_t i = 0; i < n; i++) {           /* in LRU order: the newest at the head */
        sched_entry *e = list[i].e;
        e->prev = st->tail;
        if (st->tail) st->tail->next = e;
        else st->head = e;
        st->tail = e;
        st->n++;
        st->disk_n++;
        st->disk_bytes += e->file_bytes;
    }
    free(list);
    trim_disk(st);
    return MH_OK;
}

static int make_dir(const char *dir, mh_err *err)
{
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) return MH_OK;
    return mh_err_set(err, MH_EIO, "cannot create the cache dir %s: %s", dir, strerror(errno));
}

int mh_sched_store_open(sched_store *st, const mh_model *m, mh_dtype type, const char *dir, size_t disk_budget,
                        mh_err *err)
{
    if (!dir || !*dir) return MH_OK;
    if (!st->budget)
        return mh_err_set(err, MH_EINVAL, "sched: a cache dir needs the prefix store (cache_bytes > 0)");
    int rc = mh_model_identity(m, st->id, err);
    if (rc) return rc;
    char hex[33];
    mh_kv_state_id_hex(st->id, 16, hex);
    size_t cap = strlen(dir) + 48;
    st->dir = malloc(cap);
    if (!st->dir) return mh_err_set(err, MH_ENOMEM, "sched: out of memory");
    snprintf(st->dir, cap, "%s/%s-%s", dir, hex, mh_dtype_info(type)->name);
    st->m = m;
    st->disk_budget = disk_budget;
    if ((rc = make_dir(dir, err)) || (rc = make_dir(st->dir, err))) return rc;
    return index_dir(st, type, err);
}
