/* util.h — tiny helpers shared by every module. */
#ifndef VALORFS_COMMON_UTIL_H
#define VALORFS_COMMON_UTIL_H

#include <stdint.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The time ms milliseconds from now on clock clk, as a deadline for
 * pthread_cond_timedwait (CLOCK_REALTIME unless the condvar says otherwise). */
static inline struct timespec timespec_after_ms(clockid_t clk, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + ms % 1000 * 1000000ull;
    ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    return ts;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif
