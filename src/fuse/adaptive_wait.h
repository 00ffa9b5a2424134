/* adaptive_wait.h — XFUSE's adaptive busy-event waiting, as a pure policy.
 *
 * A channel that finds no work may spin (poll without sleeping) for a
 * budget before it falls back to a sleeping wait. Spinning pays off only
 * when the next request is likely to come soon, and only when a core is
 * free — on a 2-core machine a spinner must never starve the application.
 *
 * Policy: track an EWMA of request inter-arrival gaps. The budget is about
 * twice the typical gap, capped by max_spin; a spin that ends with work
 * (hit) keeps the budget, a spin that times out (miss) halves it, so a
 * channel whose traffic stopped quickly stops burning CPU. A gap larger
 * than max_spin gives budget 0 (sleep at once).
 *
 * The caller decides whether a core is free (aw_cores_free()) and only
 * spins when it is. No locks; one struct per channel.
 */
#ifndef VALORFS_FUSE_ADAPTIVE_WAIT_H
#define VALORFS_FUSE_ADAPTIVE_WAIT_H

#include <stdint.h>

struct adaptive_wait {
    uint64_t max_spin_ns;
    uint64_t last_arrival_ns;
    uint64_t ewma_gap_ns;
    uint64_t budget_ns;
    uint64_t hits, misses, sleeps;
};

void aw_init(struct adaptive_wait *aw, uint64_t max_spin_ns);
/* A request arrived at now_ns. */
void aw_on_arrival(struct adaptive_wait *aw, uint64_t now_ns);
/* How long to spin now before sleeping (0 = sleep at once). */
uint64_t aw_budget(const struct adaptive_wait *aw);
/* The spin ended: hit = work arrived within the budget. */
void aw_on_spin_end(struct adaptive_wait *aw, int hit);

/* Cores not busy right now, from the number of runnable tasks
 * (/proc/loadavg's 4th field) and the number of online CPUs; the caller's
 * own spinners are not counted as busy. Cached for 20 ms. Thread-safe. */
int aw_cores_free(int own_spinners);

#endif
