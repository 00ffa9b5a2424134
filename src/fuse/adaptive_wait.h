/* adaptive_wait.h — XFUSE's adaptive busy-event waiting, as a pure policy.
 *
 * A channel that finds no work may spin (poll without sleeping) for a
 * budget before it falls back to a sleeping wait. Spinning pays off only
 * when the next request is likely to come soon, and only when a core is
 * free — on a 2-core machine a spinner must never starve the application.
 *
 * Policy:
 *  - The gap that matters is the idle gap: from the moment the channel ran
 *    out of work to the next request. It is measured exactly when a spin
 *    catches the request (a request that wakes a sleeper arrives late by the
 *    wake-up itself, so it says nothing about the gap).
 *  - A hit sets the budget to about four idle gaps (EWMA), between a floor
 *    and the cap; a miss halves it, so a channel whose traffic stopped soon
 *    stops burning CPU.
 *  - Every PROBE_EVERY sleeps the channel spins the full cap once. That is
 *    how a channel notices that traffic has become dense again: without it
 *    a slow, sleeping channel would keep measuring long gaps (its own wake
 *    latency) and never try to spin.
 *
 * The caller decides whether a core is free (aw_cores_free()) and only
 * spins when it is. No locks; one struct per channel.
 */
#ifndef VALORFS_FUSE_ADAPTIVE_WAIT_H
#define VALORFS_FUSE_ADAPTIVE_WAIT_H

#include <stdint.h>

#define AW_PROBE_EVERY 16

struct adaptive_wait {
    uint64_t max_spin_ns;
    uint64_t ewma_idle_ns; /* idle gap, from spins that caught a request */
    uint64_t budget_ns;
    unsigned sleeps_since_probe;
    uint64_t hits, misses, sleeps;
};

void aw_init(struct adaptive_wait *aw, uint64_t max_spin_ns);
/* How long to spin now before sleeping (0 = sleep at once). */
uint64_t aw_budget(const struct adaptive_wait *aw);
/* The spin ended after spun_ns: hit = a request arrived within the budget. */
void aw_on_spin_end(struct adaptive_wait *aw, int hit, uint64_t spun_ns);
/* The channel goes to sleep (after a miss or without spinning). */
void aw_on_sleep(struct adaptive_wait *aw);

/* Cores not busy right now, from the number of runnable tasks
 * (/proc/loadavg's 4th field) and the number of online CPUs; the caller's
 * own spinners are not counted as busy. Cached for 20 ms. Thread-safe. */
int aw_cores_free(int own_spinners);

#endif
