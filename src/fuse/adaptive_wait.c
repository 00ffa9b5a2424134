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
    aw->ewma_idle_ns = max_spin_ns / 4;
    aw->budget_ns = max_spin_ns; /* start optimistic: spin up to the cap */
}

uint64_t aw_budget(const struct adaptive_wait *aw)
{
    if (aw->max_spin_ns == 0)
        return 0;
    if (aw->sleeps_since_probe >= AW_PROBE_EVERY)
        return aw->max_spin_ns;
    return aw->budget_ns >= MIN_BUDGET_NS ? MIN(aw->budget_ns, aw->max_spin_ns) : 0;
}

void aw_on_spin_end(struct adaptive_wait *aw, int hit, uint64_t spun_ns)
{
    if (hit) {
        aw->hits++;
        aw->sleeps_since_probe = 0;
        /* EWMA with weight 1/4: reacts within a few requests */
        aw->ewma_idle_ns = aw->ewma_idle_ns - aw->ewma_idle_ns / 4 + spun_ns / 4;
        aw->budget_ns = MIN(aw->max_spin_ns, MAX(4 * aw->ewma_idle_ns, MIN_BUDGET_NS));
    } else {
        aw->misses++;
        aw->budget_ns /= 2; /* multiplicative decrease */
    }
}

void aw_on_sleep(struct adaptive_wait *aw)
{
    aw->sleeps++;
    if (aw->sleeps_since_probe >= AW_PROBE_EVERY)
        aw->sleeps_since_probe = 0; /* that was the probe */
    else
        aw->sleeps_since_probe++;
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
