/* mapguard.c: SIGBUS-proof file mappings (mh/mapguard.h).
 * Layer: engine/base (pure C11 + POSIX; no lua.h). The handler only reads
 * atomics, calls mmap (a plain syscall) and sets a flag: it takes no lock
 * and allocates nothing, so it is safe in whichever thread faulted (a pool
 * worker reading weights, the scheduler, the Lua thread). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "mh/mapguard.h"

#define MAX_GUARDS 1024

typedef struct slot {
    _Atomic uintptr_t base;          /* 0: free */
    _Atomic size_t len;
    _Atomic int prot;
    atomic_int hit;                  /* a SIGBUS landed in it */
} slot;

struct mh_map_guard {
    int idx;                         /* into slots */
    int fd;                          /* a dup: fstat sees the file's size now */
    size_t len;
    char *path;
    atomic_int broken;               /* sticky once found: 1 hit, 2 shorter */
};

static slot slots[MAX_GUARDS];
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;   /* writers only */
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static struct sigaction prev;        /* the handler before ours */
static uintptr_t page_mask;
static int installed;

/* Faults outside guarded mappings go where they went before. */
static void chain(int sig, siginfo_t *si, void *uc)
{
    if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction) {
        prev.sa_sigaction(sig, si, uc);
    } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
        prev.sa_handler(sig);
    } else {
        /* default action: returning re-runs the faulting access, which now
         * kills the process as it would have without us */
        signal(sig, SIG_DFL);
    }
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    uintptr_t a = (uintptr_t)si->si_addr;
    for (int i = 0; i < MAX_GUARDS; i++) {
        uintptr_t b = atomic_load(&slots[i].base);
        size_t n = atomic_load(&slots[i].len);
        if (!b || a < b || a >= b + n) continue;
        uintptr_t page = a & page_mask;
        /* zero pages from the faulting one to the end: the file shrank from
         * its end, so every later page is gone too */
        void *p = mmap((void *)page, b + n - page, atomic_load(&slots[i].prot),
                       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) break;
        atomic_store(&slots[i].hit, 1);
        return;
    }
    chain(sig, si, uc);
}

static void install(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    page_mask = ~(uintptr_t)((ps > 0 ? ps : 4096) - 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    installed = sigaction(SIGBUS, &sa, &prev) == 0;
}

mh_map_guard *mh_map_guard_new(int fd, void *base, size_t len, int prot, const char *path,
                               mh_err *err)
{
    pthread_once(&install_once, install);
    if (!installed) {
        mh_err_set(err, MH_EIO, "mapguard: cannot install the SIGBUS handler: %s", strerror(errno));
        return NULL;
    }
    mh_map_guard *g = calloc(1, sizeof *g);
    char *p = g ? strdup(path) : NULL;
    int dfd = p ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (dfd < 0) {
        if (p) mh_err_set(err, MH_EIO, "mapguard: cannot keep %s open: %s", path, strerror(errno));
        else mh_err_set(err, MH_ENOMEM, "mapguard: out of memory");
        free(p);
        free(g);
        return NULL;
    }
    g->idx = -1;
    g->fd = dfd;
    g->len = len;
    g->path = p;
    pthread_mutex_lock(&slots_mu);
    for (int i = 0; i < MAX_GUARDS && g->idx < 0; i++) {
        if (atomic_load(&slots[i].base)) continue;
        atomic_store(&slots[i].hit, 0);
        atomic_store(&slots[i].len, len);
        atomic_store(&slots[i].prot, prot);
        atomic_store(&slots[i].base, (uintptr_t)base);   /* last: the handler sees it whole */
        g->idx = i;
    }
    pthread_mutex_unlock(&slots_mu);
    if (g->idx < 0) {
        mh_err_set(err, MH_ENOMEM, "mapguard: more than %d files mapped at once", MAX_GUARDS);
        mh_map_guard_free(g);
        return NULL;
    }
    return g;
}

void mh_map_guard_free(mh_map_guard *g)
{
    if (!g) return;
    if (g->idx >= 0) {
        pthread_mutex_lock(&slots_mu);
        atomic_store(&slots[g->idx].base, 0);
        pthread_mutex_unlock(&slots_mu);
    }
    close(g->fd);
    free(g->path);
    free(g);
}

int mh_map_guard_check(mh_map_guard *g, mh_err *err)
{
    struct stat sb;
    int b = atomic_load(&g->broken);
    if (!b && atomic_load(&slots[g->idx].hit)) b = 1;
    if (!b && fstat(g->fd, &sb) == 0 && (uint64_t)sb.st_size < (uint64_t)g->len) b = 2;
    if (!b) return MH_OK;
    atomic_store(&g->broken, b);
    const char *base = strrchr(g->path, '/');   /* the file's name only: servers pass this text to clients */
    return mh_err_set(err, MH_EIO, "%s was truncated on disk while in use (%s); its data are gone: "
                      "load it again once the file is whole", base ? base + 1 : g->path,
                      b == 1 ? "a read hit a missing page" : "it is now shorter than when mapped");
}
