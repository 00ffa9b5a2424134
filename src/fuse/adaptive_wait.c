/* adaptive_wait.c — see adaptive_wait.h. */
#include "fuse/adaptive_wait.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/util.h"

#define MIN_BUDGET_NS 2000ull /* below this a spin is not worth its syscalls */

void aw_init(struct adaptive_wait *aw, uint64_t max_spin_ns)
{
    *aw = (struct adaptive_wait){ .max_spin_ns = max_spin_ns };
    aw->ewma_gap_ns = max_spin_ns; /* start optimistic: spin up to the cap */
    aw->budget_ns = max_spin_ns;
}

void aw_on_arrival(struct adaptive_wait *aw, uint64_t now)
{
    if (aw->last_arrival_ns != 0 && now > aw->last_arrival_ns) {
        uint64_t gap = now - aw->last_arrival_ns;
        if (gap > 1000000000ull)
            gap = 1000000000ull;
        /* EWMA with weight 1/8: reacts within a few requests, ignores one outlier. */
        aw->ewma_gap_ns = aw->ewma_gap_ns - aw->ewma_gap_ns / 8 + gap / 8;
    }
    aw->last_arrival_ns = now;
}

uint64_t aw_budget(const struct adaptive_wait *aw)
{
    if (aw->max_spin_ns == 0 || aw->ewma_gap_ns > aw->max_spin_ns)
        return 0;
    uint64_t b = MIN(aw->budget_ns, MAX(2 * aw->ewma_gap_ns, MIN_BUDGET_NS));
    return b < MIN_BUDGET_NS ? 0 : MIN(b, aw->max_spin_ns);
}

void aw_on_spin_end(struct adaptive_wait *aw, int hit)
{
    if (hit) {
        aw->hits++;
        /* grow back towards the cap: additive increase */
        aw->budget_ns = MIN(aw->max_spin_ns, aw->budget_ns + aw->max_spin_ns / 8 + MIN_BUDGET_NS);
    } else {
        aw->misses++;
        aw->sleeps++;
        aw->budget_ns /= 2; /* multiplicative decrease */
        if (aw->budget_ns < MIN_BUDGET_NS)
            aw->budget_ns = MIN_BUDGET_NS; /* keep probing at the floor */
    }
}

static _Atomic uint64_t cores_stamp_ns;
static _Atomic int cores_busy_cached;

static int read_runnable(void)
{
    int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 1;
    buf[n] = '\0';
    double a, b, c;
    int running = 1, total = 0;
    if (sscanf(buf, "%lf %lf %lf %d/%d", &a, &b, &c, &running, &total) < 4)
        return 1;
    return running;
}

int aw_cores_free(int own_spinners)
{
    static _Atomic int ncpu_cached;
    int ncpu = atomic_load_explicit(&ncpu_cached, memory_order_relaxed);
    if (ncpu == 0) {
        ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
        atomic_store_explicit(&ncpu_cached, ncpu, memory_order_relaxed);
    }
    uint64_t now = now_ns();
    if (now - atomic_load_explicit(&cores_stamp_ns, memory_order_relaxed) > 20000000ull) {
        atomic_store_explicit(&cores_stamp_ns, now, memory_order_relaxed);
        /* the reader itself is runnable; do not count it */
        atomic_store_explicit(&cores_busy_cached, read_runnable() - 1, memory_order_relaxed);
    }
    int busy = atomic_load_explicit(&cores_busy_cached, memory_order_relaxed) - own_spinners;
    if (busy < 0)
        busy = 0;
    return busy >= ncpu ? 0 : ncpu - busy;
}
