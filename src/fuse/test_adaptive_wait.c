/* Unit test of the adaptive busy-wait policy. */
#include <stdio.h>
#include <stdlib.h>

#include "fuse/adaptive_wait.h"

#include "common/test_check.h"

/* One idle period: spin (if the budget allows) for gap_ns of idle time. */
static void idle_period(struct adaptive_wait *aw, uint64_t gap_ns)
{
    uint64_t b = aw_budget(aw);
    if (b > 0 && gap_ns < b) {
        aw_on_spin_end(aw, 1, gap_ns);
        return;
    }
    if (b > 0)
        aw_on_spin_end(aw, 0, b);
    aw_on_sleep(aw);
}

int main(void)
{
    struct adaptive_wait aw;
    /* spinning disabled */
    aw_init(&aw, 0);
    CHECK(aw_budget(&aw) == 0);
    idle_period(&aw, 1000);
    CHECK(aw_budget(&aw) == 0 && aw.hits == 0);

    /* dense traffic (5 us idle gaps), 50 us cap: every spin hits and the
     * budget settles near four gaps */
    aw_init(&aw, 50000);
    for (int i = 0; i < 100; i++)
        idle_period(&aw, 5000);
    CHECK(aw.hits == 100 && aw.misses == 0);
    CHECK(aw_budget(&aw) >= 15000 && aw_budget(&aw) <= 25000);

    /* traffic stops (1 ms gaps): misses halve the budget until the channel
     * sleeps at once, spinning only for the periodic probe */
    uint64_t spun = 0;
    for (int i = 0; i < 200; i++) {
        uint64_t b = aw_budget(&aw);
        spun += b;
        idle_period(&aw, 1000000);
    }
    CHECK(aw.hits == 100);
    CHECK(spun < 200 * 50000 / 8); /* far less than spinning every time */
    int zero = 0;
    for (int i = 0; i < AW_PROBE_EVERY; i++) {
        zero += aw_budget(&aw) == 0;
        idle_period(&aw, 1000000);
    }
    CHECK(zero >= AW_PROBE_EVERY - 1);

    /* traffic becomes dense again: within one probe period a probe catches
     * a request and spinning resumes */
    for (int i = 0; i < AW_PROBE_EVERY + 2; i++)
        idle_period(&aw, 8000);
    uint64_t hits_before = aw.hits;
    CHECK(hits_before > 100);
    for (int i = 0; i < 20; i++)
        idle_period(&aw, 8000);
    CHECK(aw.hits == hits_before + 20);
    CHECK(aw_budget(&aw) <= 50000);

    /* cores: never negative */
    CHECK(aw_cores_free(0) >= 0);
    CHECK(aw_cores_free(1000) >= 0);
    printf("%s\n", failures ? "adaptive_wait: FAILED" : "adaptive_wait: ok");
    return failures ? 1 : 0;
}
