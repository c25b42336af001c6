/* mapguard.h: file mappings a shrinking file cannot crash. Layer:
 * engine/base (pure C11 + POSIX signals, mmap). A read past a truncated
 * file's new end raises SIGBUS; for a guarded mapping the handler maps zero
 * pages over the rest and marks the guard hit, and the owner's next check
 * fails naming the file. See docs/model-files.md. */
#ifndef MH_MAPGUARD_H
#define MH_MAPGUARD_H

#include <stddef.h>
#include "mh/err.h"

typedef struct mh_map_guard mh_map_guard;

/* Watches [base, base+len), mapped MAP_PRIVATE with prot from the open file
 * fd (borrowed: the guard keeps a dup) at path. Installs the process's
 * SIGBUS handler on first use (chaining to the one before it for faults
 * outside guarded mappings). NULL with err set when out of slots/fds. */
mh_map_guard *mh_map_guard_new(int fd, void *base, size_t len, int prot, const char *path,
                               mh_err *err);
/* Stops watching; call before munmap. NULL is a no-op. */
void mh_map_guard_free(mh_map_guard *g);
/* MH_OK while the file holds the whole mapping; MH_EIO naming the file once
 * a read hit a truncated page or the file is found shorter, from then on
 * (the zero pages stay: the data are gone until the file is mapped again). */
int mh_map_guard_check(mh_map_guard *g, mh_err *err);

#endif
