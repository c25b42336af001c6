/* clock.h: the clocks the benchmarks read, in seconds: wall (monotonic),
 * the process's CPU and this thread's CPU (steadier than the wall clock on
 * a shared machine). Header-only (static): each benchmark is one program.
 * Layer: bench; libc only. */
#ifndef MH_BENCH_CLOCK_H
#define MH_BENCH_CLOCK_H
#include <time.h>

static inline double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline double wall_s(void) { return clock_s(CLOCK_MONOTONIC); }
static inline double process_cpu_s(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }
static inline double thread_cpu_s(void) { return clock_s(CLOCK_THREAD_CPUTIME_ID); }

#endif
