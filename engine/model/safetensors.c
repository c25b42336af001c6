/* safetensors.c: the .safetensors reader (mmap, zero-copy views) and writer
 * (temp file + rename), see mh/safetensors.h. Layer: engine/model; uses
 * cJSON for headers and index files, POSIX for mmap and files.
 * Rule of the reader: every number from the file is checked before it is
 * used as a size or an offset, so no input can make us read outside the map. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "mh/mapguard.h"
#include "mh/safetensors.h"

#define HEADER_MAX ((uint64_t)100 << 20)  /* same cap as the reference library */
#define INDEX_MAX  ((size_t)64 << 20)
#define JSON_INT_MAX 9007199254740992.0   /* 2^53: larger integers are not exact in JSON doubles */

/* ===== dtype table ===== */
typedef struct st_dtype {
    const char *name;
    int dtype;     /* mh_dtype or -1 (known to the format, not to moonhub) */
    int bits;      /* per element */
} st_dtype;

static const st_dtype dtypes[] = {
    { "F32", MH_DTYPE_F32, 32 },  { "F16", MH_DTYPE_F16, 16 },  { "BF16", MH_DTYPE_BF16, 16 },
    { "I32", MH_DTYPE_I32, 32 },  { "I64", MH_DTYPE_I64, 64 },  { "U8", MH_DTYPE_U8, 8 },
    { "I8", MH_DTYPE_I8, 8 },
    { "F64", -1, 64 }, { "BOOL", -1, 8 }, { "I16", -1, 16 }, { "U16", -1, 16 },
    { "U32", -1, 32 }, { "U64", -1, 64 }, { "F8_E4M3", -1, 8 }, { "F8_E5M2", -1, 8 },
    { "F8_E8M0", -1, 8 }, { "C64", -1, 64 }, { "F4", -1, 4 }, { "F6_E2M3", -1, 6 },
    { "F6_E3M2", -1, 6 },
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

static const st_dtype *dtype_by_name(const char *s)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(dtypes[i].name, s)) return &dtypes[i];
    return NULL;
}

const char *mh_safetensors_dtype_name(mh_dtype dt)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == (int)dt) return dtypes[i].name;
    return NULL;
}

/* ===== reader state ===== */
typedef struct shard {
    char *path;
    mh_storage *map;       /* the whole file, mmapped; one reference */
    mh_map_guard *guard;   /* owned by map's free callback */
    uint64_t data_off;     /* 8 + header length */
} shard;

typedef struct entry {
    mh_st_info info;
    char *name;            /* owned; info.name points here */
} entry;

struct mh_safetensors {
    shard *shards;
    int n_shards;
    entry *t;              /* sorted by name */
    int n, cap;
    char **meta;           /* 2 * n_meta strings */
    int n_meta;
};

static void unmap_file(void *data, size_t nbytes, void *ud)
{
    mh_map_guard_free(ud);
    munmap(data, nbytes);
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Maps path privately (copy-on-write: views may be written, the file never). */
static mh_storage *map_file(const char *path, mh_map_guard **guard, mh_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mh_err_set(err, MH_EIO, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        mh_err_set(err, MH_EIO, "%s is not a regular file", path);
        close(fd);
        return NULL;
    }
    if (sb.st_size < 8) {
        mh_err_set(err, MH_EFORMAT, "%s: truncated: %lld bytes, a safetensors file needs at least 8",
                   path, (long long)sb.st_size);
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        mh_err_set(err, MH_EIO, "cannot map %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    *guard = mh_map_guard_new(fd, p, (size_t)sb.st_size, PROT_READ | PROT_WRITE, path, err);
    close(fd);
    mh_storage *s = *guard ? mh_storage_wrap(p, (size_t)sb.st_size, unmap_file, *guard, err) : NULL;
    if (!s) {
        mh_map_guard_free(*guard);
        *guard = NULL;
        munmap(p, (size_t)sb.st_size);
    }
    return s;
}

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A JSON number that is a non-negative integer <= 2^53, or false. */
static bool json_u64(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= JSON_INT_MAX) || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

static int add_entry(mh_safetensors *st, const char *name, mh_err *err)
{
    if (st->n == st->cap) {
        int cap = st->cap ? st->cap * 2 : 64;
        entry *t = realloc(st->t, (size_t)cap * sizeof *t);
        if (!t) return mh_err_set(err, MH_ENOMEM, "out of memory reading a safetensors header");
        st->t = t;
        st->cap = cap;
    }
    entry *e = &st->t[st->n];
    memset(e, 0, sizeof *e);
    e->name = dupstr(name);
    if (!e->name) return mh_err_set(err, MH_ENOMEM, "out of memory reading a safetensors header");
    e->info.name = e->name;
    st->n++;
    return MH_OK;
}

/* Fills one entry from its header object; checks dtype, shape and offsets. */
static int parse_tensor(const cJSON *j, entry *e, int shard_i, uint64_t data_size,
                        const char *path, mh_err *err)
{
    const char *nm = e->name;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsObject(j) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return mh_err_set(err, MH_EFORMAT, "%s: tensor '%s' needs dtype, shape and data_offsets", path, nm);
    const st_dtype *d = dtype_by_name(dt->valuestring);
    if (!d) return mh_err_set(err, MH_EFORMAT, "%s: tensor '%s' has unknown dtype '%.32s'", path, nm, dt->valuestring);
    e->info.dtype = d->dtype;
    e->info.file_dtype = d->name;
    e->info.shard = shard_i;
    int nd = cJSON_GetArraySize(sh);
    if (nd > MH_MAX_DIMS)
        return mh_err_set(err, MH_EFORMAT, "%s: tensor '%s' has %d dims, at most %d are supported", path, nm, nd, MH_MAX_DIMS);
    e->info.ndim = nd;
    uint64_t numel = 1, overflow = 0;
    int k = 0;
    for (const cJSON *x = sh->child; x; x = x->next, k++) {
        uint64_t v;
        if (!json_u64(x, &v)) return mh_err_set(err, MH_EFORMAT, "%s: tensor '%s' has a bad shape entry", path, nm);
        e->info.shape[k] = (int64_t)v;
        if (v && numel > (uint64_t)JSON_INT_MAX / v) overflow = 1;
        numel *= v;
    }
    uint64_t b, en;
    if (cJSON_GetArraySize(off) != 2 || !json_u64(off->child, &b) || !json_u64(off->child->next, &en) || b > en)
        return mh_err_set(err, MH_EFORMAT, "%s: tensor '%s' has bad data_offsets", path, nm);
    if (en > data_size)
        return mh_err_set(err, MH_EFORMAT, "%s: tensor '%s' ends at byte %llu of a %llu-byte data section (truncated file?)",
                          path, nm, (unsigned long long)en, (unsigned long long)data_size);
    e->info.begin = b;
    e->info.end = en;
    if (overflow)
        return mh_err_set(err, MH_EFORMAT, "%s: tensor '%s' has more than 2^53 elements", path, nm);
    /* numel <= 2^53 and at most 8 bytes each: the product fits in 64 bits;
     * sub-byte types (F4, F6) are only bounds-checked, never viewed */
    uint64_t need = numel * (uint64_t)(d->bits / 8);
    if (d->bits % 8 == 0 && need != en - b)
        return mh_err_set(err, MH_EFORMAT, "%s: tensor '%s': shape and dtype need %llu bytes, data_offsets give %llu",
                          path, nm, (unsigned long long)need, (unsigned long long)(en - b));
    return MH_OK;
}

static int parse_metadata(mh_safetensors *st, const cJSON *m, const char *path, mh_err *err)
{
    if (!cJSON_IsObject(m)) return mh_err_set(err, MH_EFORMAT, "%s: __metadata__ must be an object", path);
    if (st->meta) return MH_OK;   /* sharded: the first shard's metadata wins */
    int n = cJSON_GetArraySize(m);
    st->meta = calloc((size_t)(2 * n + 1), sizeof *st->meta);
    if (!st->meta) return mh_err_set(err, MH_ENOMEM, "out of memory reading metadata");
    for (const cJSON *x = m->child; x; x = x->next) {
        if (!cJSON_IsString(x))
            return mh_err_set(err, MH_EFORMAT, "%s: __metadata__ value of '%s' is not a string", path, x->string);
        st->meta[2 * st->n_meta] = dupstr(x->string);
        st->meta[2 * st->n_meta + 1] = dupstr(x->valuestring);
        st->n_meta++;
        if (!st->meta[2 * st->n_meta - 2] || !st->meta[2 * st->n_meta - 1])
            return mh_err_set(err, MH_ENOMEM, "out of memory reading metadata");
    }
    return MH_OK;
}

static int cmp_by_begin(const void *a, const void *b)
{
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    return x->info.begin < y->info.begin ? -1 : x->info.begin > y->info.begin;
}

/* Rejects tensors of one shard whose byte ranges overlap (entries from..n). */
static int check_overlap(mh_safetensors *st, int from, const char *path, mh_err *err)
{
    int n = st->n - from;
    if (n < 2) return MH_OK;
    entry **v = malloc((size_t)n * sizeof *v);
    if (!v) return mh_err_set(err, MH_ENOMEM, "out of memory checking offsets");
    for (int i = 0; i < n; i++) v[i] = &st->t[from + i];
    qsort(v, (size_t)n, sizeof *v, cmp_by_begin);
    int rc = MH_OK;
    for (int i = 1; i < n && rc == MH_OK; i++)
        if (v[i]->info.begin < v[i - 1]->info.end)
            rc = mh_err_set(err, MH_EFORMAT, "%s: tensors '%s' and '%s' overlap", path, v[i - 1]->name, v[i]->name);
    free(v);
    return rc;
}

/* Parses the header of one mapped shard and appends its tensors. */
static int parse_shard(mh_safetensors *st, int si, mh_err *err)
{
    shard *sh = &st->shards[si];
    const unsigned char *p = sh->map->data;
    uint64_t size = sh->map->nbytes, hlen = read_le64(p);
    if (hlen == 0 || hlen > HEADER_MAX || hlen > size - 8)
        return mh_err_set(err, MH_EFORMAT, "%s: header length %llu does not fit a %llu-byte file",
                          sh->path, (unsigned long long)hlen, (unsigned long long)size);
    sh->data_off = 8 + hlen;
    const char *js = (const char *)p + 8, *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(js, (size_t)hlen, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mh_err_set(err, MH_EFORMAT, "%s: header is not a JSON object", sh->path);
    }
    for (; end && end < js + hlen; end++)
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r' && *end != '\0') {
            cJSON_Delete(root);
            return mh_err_set(err, MH_EFORMAT, "%s: junk after the JSON header", sh->path);
        }
    int rc = MH_OK, from = st->n;
    for (const cJSON *x = root->child; x && rc == MH_OK; x = x->next) {
        if (!strcmp(x->string, "__metadata__")) {
            rc = parse_metadata(st, x, sh->path, err);
            continue;
        }
        rc = add_entry(st, x->string, err);
        if (rc == MH_OK) rc = parse_tensor(x, &st->t[st->n - 1], si, size - sh->data_off, sh->path, err);
    }
    cJSON_Delete(root);
    return rc == MH_OK ? check_overlap(st, from, sh->path, err) : rc;
}

static int add_shard(mh_safetensors *st, const char *path, mh_err *err)
{
    shard *v = realloc(st->shards, (size_t)(st->n_shards + 1) * sizeof *v);
    if (!v) return mh_err_set(err, MH_ENOMEM, "out of memory opening %s", path);
    st->shards = v;
    shard *s = &v[st->n_shards];
    memset(s, 0, sizeof *s);
    s->path = dupstr(path);
    if (!s->path) return mh_err_set(err, MH_ENOMEM, "out of memory opening %s", path);
    st->n_shards++;
    s->map = map_file(path, &s->guard, err);
    if (!s->map) return err ? err->code : MH_EIO;
    return parse_shard(st, st->n_shards - 1, err);
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int sort_and_check_names(mh_safetensors *st, mh_err *err)
{
    /* an empty header ({} or metadata only) leaves st->t NULL: qsort's
     * pointer must be valid even for 0 elements (C11 7.22.5) */
    if (st->n > 1) qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_by_name);
    for (int i = 1; i < st->n; i++)
        if (!strcmp(st->t[i].name, st->t[i - 1].name))
            return mh_err_set(err, MH_EFORMAT, "tensor '%s' appears twice", st->t[i].name);
    return MH_OK;
}

/* ===== sharded checkpoints ===== */
static char *read_small_file(const char *path, size_t *len, mh_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mh_err_set(err, MH_EIO, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(INDEX_MAX + 1);
    size_t n = buf ? fread(buf, 1, INDEX_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > INDEX_MAX) {
        mh_err_set(err, buf ? (bad ? MH_EIO : MH_EFORMAT) : MH_ENOMEM, "cannot read %s%s", path,
                   n > INDEX_MAX ? ": index file larger than 64 MiB" : "");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Shard file names come from the index: keep them inside its directory. */
static bool safe_shard_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int find_shard(const mh_safetensors *st, const char *path)
{
    for (int i = 0; i < st->n_shards; i++)
        if (!strcmp(st->shards[i].path, path)) return i;
    return -1;
}

/* Opens every shard named in the index's weight_map, then checks that each
 * listed tensor lives in the shard the index names. */
static int open_index(mh_safetensors *st, const char *path, mh_err *err)
{
    size_t len;
    char *text = read_small_file(path, &len, err);
    if (!text) return err ? err->code : MH_EIO;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return mh_err_set(err, MH_EFORMAT, "%s: not an index file (no weight_map object)", path);
    }
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path) : 1;
    const char *dir = slash ? path : ".";
    int rc = MH_OK;
    char full[4096];
    for (const cJSON *x = wm->child; x && rc == MH_OK; x = x->next) {
        if (!cJSON_IsString(x) || !safe_shard_name(x->valuestring)) {
            rc = mh_err_set(err, MH_EFORMAT, "%s: weight_map entry '%s' has a bad file name", path, x->string);
            break;
        }
        snprintf(full, sizeof full, "%.*s/%s", dirlen, dir, x->valuestring);
        if (find_shard(st, full) < 0) rc = add_shard(st, full, err);
    }
    if (rc == MH_OK) rc = sort_and_check_names(st, err);
    for (const cJSON *x = wm->child; x && rc == MH_OK; x = x->next) {
        snprintf(full, sizeof full, "%.*s/%s", dirlen, dir, x->valuestring);
        int i = mh_safetensors_find(st, x->string);
        if (i < 0 || st->t[i].info.shard != find_shard(st, full))
            rc = mh_err_set(err, MH_EFORMAT, "%s: index puts '%s' in %s, which does not hold it",
                            path, x->string, x->valuestring);
    }
    cJSON_Delete(root);
    return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int open_path(mh_safetensors *st, const char *path, mh_err *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return mh_err_set(err, MH_EIO, "cannot open %s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        char p[4096];
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
        if (access(p, R_OK) == 0) return open_index(st, p, err);
        snprintf(p, sizeof p, "%s/model.safetensors", path);
        if (access(p, R_OK) == 0) return open_path(st, p, err);
        return mh_err_set(err, MH_EIO, "%s holds neither model.safetensors nor model.safetensors.index.json", path);
    }
    if (ends_with(path, ".json")) return open_index(st, path, err);
    int rc = add_shard(st, path, err);
    return rc == MH_OK ? sort_and_check_names(st, err) : rc;
}

mh_safetensors *mh_safetensors_open(const char *path, mh_err *err)
{
    if (!path || !*path) {
        mh_err_set(err, MH_EINVAL, "safetensors: empty path");
        return NULL;
    }
    mh_safetensors *st = calloc(1, sizeof *st);
    if (!st) {
        mh_err_set(err, MH_ENOMEM, "out of memory opening %s", path);
        return NULL;
    }
    if (open_path(st, path, err) != MH_OK) {
        mh_safetensors_close(st);
        return NULL;
    }
    return st;
}

int mh_safetensors_check(const mh_safetensors *st, mh_err *err)
{
    for (int i = 0; i < st->n_shards; i++) {
        int rc = st->shards[i].guard ? mh_map_guard_check(st->shards[i].guard, err) : MH_OK;
        if (rc) return rc;
    }
    return MH_OK;
}

void mh_safetensors_close(mh_safetensors *st)
{
    if (!st) return;
    for (int i = 0; i < st->n_shards; i++) {
        mh_storage_release(st->shards[i].map);
        free(st->shards[i].path);
    }
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    for (int i = 0; i < 2 * st->n_meta; i++) free(st->meta[i]);
    free(st->meta);
    free(st->shards);
    free(st->t);
    free(st);
}

/* ===== reader queries ===== */
int mh_safetensors_count(const mh_safetensors *st) { return st->n; }
int mh_safetensors_shard_count(const mh_safetensors *st) { return st->n_shards; }

const char *mh_safetensors_shard_path(const mh_safetensors *st, int shard)
{
    return shard >= 0 && shard < st->n_shards ? st->shards[shard].path : NULL;
}

const mh_st_info *mh_safetensors_info(const mh_safetensors *st, int i)
{
    return i >= 0 && i < st->n ? &st->t[i].info : NULL;
}

int mh_safetensors_find(const mh_safetensors *st, const char *name)
{
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(st->t[mid].name, name);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
}

mh_tensor *mh_safetensors_tensor(mh_safetensors *st, int i, mh_err *err)
{
    if (i < 0 || i >= st->n) {
        mh_err_set(err, MH_ERANGE, "safetensors: tensor index %d out of range (%d tensors)", i, st->n);
        return NULL;
    }
    const mh_st_info *in = &st->t[i].info;
    if (in->dtype < 0) {
        mh_err_set(err, MH_ETYPE, "tensor '%s' has unsupported dtype %s (moonhub reads F32 F16 BF16 I32 I64 U8 I8)",
                   in->name, in->file_dtype);
        return NULL;
    }
    const shard *sh = &st->shards[in->shard];
    size_t off = (size_t)(sh->data_off + in->begin);
    size_t esize = mh_dtype_info((mh_dtype)in->dtype)->type_size;
    if (off % esize == 0)
        return mh_tensor_from_storage(sh->map, off, (mh_dtype)in->dtype, in->ndim, in->shape, NULL, err);
    /* misaligned for its dtype (a writer that skipped header padding): copy */
    mh_tensor *t = mh_tensor_new((mh_dtype)in->dtype, in->ndim, in->shape, err);
    if (t) memcpy(mh_tensor_data(t), (const char *)sh->map->data + off, (size_t)(in->end - in->begin));
    return t;
}

mh_tensor *mh_safetensors_get(mh_safetensors *st, const char *name, mh_err *err)
{
    int i = mh_safetensors_find(st, name);
    if (i < 0) {
        mh_err_set(err, MH_ERANGE, "no tensor named '%s'", name);
        return NULL;
    }
    return mh_safetensors_tensor(st, i, err);
}

int mh_safetensors_meta_count(const mh_safetensors *st) { return st->n_meta; }

const char *mh_safetensors_meta_key(const mh_safetensors *st, int i)
{
    return i >= 0 && i < st->n_meta ? st->meta[2 * i] : NULL;
}

const char *mh_safetensors_meta_value(const mh_safetensors *st, int i)
{
    return i >= 0 && i < st->n_meta ? st->meta[2 * i + 1] : NULL;
}

const char *mh_safetensors_meta_get(const mh_safetensors *st, const char *key)
{
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

/* ===== writer ===== */
typedef struct wtensor {
    const char *name;
    mh_tensor *t;          /* contiguous; one reference */
    size_t esize, nbytes;
} wtensor;

static int cmp_write_order(const void *a, const void *b)
{
    const wtensor *x = a, *y = b;
    if (x->esize != y->esize) return x->esize > y->esize ? -1 : 1;   /* largest alignment first */
    return strcmp(x->name, y->name);
}

static int cmp_name_only(const void *a, const void *b)
{
    return strcmp(((const wtensor *)a)->name, ((const wtensor *)b)->name);
}

/* Checks the inputs and takes a contiguous reference to each tensor. */
static int collect(const mh_st_named *in, int n, wtensor *w, mh_err *err)
{
    for (int i = 0; i < n; i++) {
        const char *nm = in[i].name;
        if (!nm || !*nm || !strcmp(nm, "__metadata__"))
            return mh_err_set(err, MH_EINVAL, "safetensors: tensor %d has a bad name '%s'", i, nm ? nm : "(null)");
        if (!in[i].tensor) return mh_err_set(err, MH_EINVAL, "safetensors: tensor '%s' is NULL", nm);
        mh_dtype dt = in[i].tensor->dtype;
        if (!mh_safetensors_dtype_name(dt))
            return mh_err_set(err, MH_ETYPE, "safetensors: tensor '%s' has dtype %s, which safetensors cannot hold",
                              nm, mh_dtype_info(dt)->name);
        w[i].name = nm;
        w[i].t = mh_tensor_contiguous(in[i].tensor, err);
        if (!w[i].t) return err ? err->code : MH_ENOMEM;
        w[i].esize = mh_dtype_info(dt)->type_size;
        w[i].nbytes = (size_t)mh_tensor_numel(w[i].t) * w[i].esize;
    }
    qsort(w, (size_t)n, sizeof *w, cmp_name_only);
    for (int i = 1; i < n; i++)
        if (!strcmp(w[i].name, w[i - 1].name))
            return mh_err_set(err, MH_EINVAL, "safetensors: tensor name '%s' given twice", w[i].name);
    qsort(w, (size_t)n, sizeof *w, cmp_write_order);
    return MH_OK;
}

/* The JSON header, padded with spaces to a multiple of 8; malloc'd. */
static char *build_header(const wtensor *w, int n, const char *const *meta, int n_meta,
                          size_t *len, mh_err *err)
{
    cJSON *root = cJSON_CreateObject(), *m = NULL;
    bool ok = root != NULL;
    if (ok && n_meta > 0) {
        ok = (m = cJSON_AddObjectToObject(root, "__metadata__")) != NULL;
        for (int i = 0; ok && i < n_meta; i++) {
            if (!meta[2 * i] || !meta[2 * i + 1]) {
                cJSON_Delete(root);
                mh_err_set(err, MH_EINVAL, "safetensors: metadata pair %d has a NULL key or value", i);
                return NULL;
            }
            ok = cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]) != NULL;
        }
    }
    uint64_t off = 0;
    for (int i = 0; ok && i < n; i++) {
        cJSON *o = cJSON_AddObjectToObject(root, w[i].name), *sh = cJSON_CreateArray();
        cJSON *offs = cJSON_CreateArray();
        ok = o && sh && offs;
        if (!ok) { cJSON_Delete(sh); cJSON_Delete(offs); break; }
        cJSON_AddStringToObject(o, "dtype", mh_safetensors_dtype_name(w[i].t->dtype));
        cJSON_AddItemToObject(o, "shape", sh);
        for (int d = 0; d < w[i].t->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)w[i].t->shape[d]));
        cJSON_AddItemToObject(o, "data_offsets", offs);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        off += w[i].nbytes;
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
    }
    char *js = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!js) {
        mh_err_set(err, MH_ENOMEM, "safetensors: out of memory building the header");
        return NULL;
    }
    size_t n0 = strlen(js), padded = (n0 + 7) & ~(size_t)7;
    char *out = malloc(8 + padded);
    if (!out) {
        free(js);
        mh_err_set(err, MH_ENOMEM, "safetensors: out of memory building the header");
        return NULL;
    }
    for (int i = 0; i < 8; i++) out[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xff);
    memcpy(out + 8, js, n0);
    memset(out + 8 + n0, ' ', padded - n0);
    free(js);
    *len = 8 + padded;
    return out;
}

static int write_all(int fd, const void *buf, size_t n, const char *path, mh_err *err)
{
    const char *p = buf;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
        ssize_t k = write(fd, p, chunk);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return mh_err_set(err, MH_EIO, "cannot write %s: %s", path, k < 0 ? strerror(errno) : "short write");
        p += k;
        n -= (size_t)k;
    }
    return MH_OK;
}

/* Creates a fresh temp file next to path (mode 0666 & ~umask, like fopen). */
static int open_temp(const char *path, char *tmp, size_t cap, mh_err *err)
{
    static _Atomic unsigned counter;
    for (int tries = 0; tries < 100; tries++) {
        snprintf(tmp, cap, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) {
            if (fd < 0) mh_err_set(err, MH_EIO, "cannot create %s: %s", tmp, strerror(errno));
            return fd;
        }
    }
    mh_err_set(err, MH_EIO, "cannot create a temporary file next to %s", path);
    return -1;
}

static int write_file(const char *path, const char *hdr, size_t hlen, const wtensor *w, int n, mh_err *err)
{
    char tmp[4200];
    int fd = open_temp(path, tmp, sizeof tmp, err);
    if (fd < 0) return err ? err->code : MH_EIO;
    int rc = write_all(fd, hdr, hlen, tmp, err);
    for (int i = 0; i < n && rc == MH_OK; i++)
        rc = write_all(fd, mh_tensor_data(w[i].t), w[i].nbytes, tmp, err);
    if (rc == MH_OK && fsync(fd) != 0)
        rc = mh_err_set(err, MH_EIO, "cannot sync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == MH_OK)
        rc = mh_err_set(err, MH_EIO, "cannot close %s: %s", tmp, strerror(errno));
    if (rc == MH_OK && rename(tmp, path) != 0)
        rc = mh_err_set(err, MH_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc != MH_OK) unlink(tmp);
    return rc;
}

int mh_safetensors_save(const char *path, const mh_st_named *tensors, int n,
                        const char *const *meta, int n_meta, mh_err *err)
{
    if (!path || !*path || n < 0 || n_meta < 0 || (n > 0 && !tensors) || (n_meta > 0 && !meta))
        return mh_err_set(err, MH_EINVAL, "safetensors.save: bad arguments");
    wtensor *w = calloc((size_t)n + 1, sizeof *w);
    if (!w) return mh_err_set(err, MH_ENOMEM, "safetensors.save: out of memory");
    int rc = collect(tensors, n, w, err);
    size_t hlen = 0;
    char *hdr = rc == MH_OK ? build_header(w, n, meta, n_meta, &hlen, err) : NULL;
    if (rc == MH_OK && !hdr) rc = err ? err->code : MH_ENOMEM;
    if (rc == MH_OK) rc = write_file(path, hdr, hlen, w, n, err);
    free(hdr);
    for (int i = 0; i < n; i++) mh_tensor_release(w[i].t);
    free(w);
    return rc;
}
