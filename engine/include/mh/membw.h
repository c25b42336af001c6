/* membw.h: a memory-bandwidth probe (streaming reads of a buffer larger than
 * the last-level cache, on the kernels' thread pool), so benchmarks can say
 * how close token generation runs to the machine's bandwidth ceiling.
 * Layer: engine/base. */
#ifndef MH_MEMBW_H
#define MH_MEMBW_H

#include <stddef.h>
#include <stdint.h>
#include "mh/err.h"

typedef struct mh_membw_result {
    double bytes_per_s;      /* best of the rounds */
    size_t buffer_bytes;
    int threads, rounds;
    uint64_t checksum;       /* sum of every 64-bit word read, all rounds (mod 2^64) */
} mh_membw_result;

/* Reads a buffer of `bytes` (0: twice the LLC, 256 MiB to 1 GiB) `rounds` times (0: 5) with every
 * compute thread; MH_EINVAL for a buffer under 1 MiB, MH_ENOMEM when it
 * cannot be allocated. */
int mh_membw_probe(size_t bytes, int rounds, mh_membw_result *out, mh_err *err);

#endif
