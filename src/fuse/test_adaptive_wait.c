/* Unit test of the adaptive busy-wait policy. */
#include <stdio.h>
#include <stdlib.h>

#include "fuse/adaptive_wait.h"

static int failures;
#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

int main(void)
{
    struct adaptive_wait aw;
    /* spinning disabled */
    aw_init(&aw, 0);
    CHECK(aw_budget(&aw) == 0);

    /* frequent arrivals (every 5 us) with a 50 us cap: spin about 2 gaps */
    aw_init(&aw, 50000);
    uint64_t t = 1000000;
    for (int i = 0; i < 100; i++, t += 5000)
        aw_on_arrival(&aw, t);
    uint64_t b = aw_budget(&aw);
    CHECK(b >= 8000 && b <= 12000);

    /* sparse arrivals (every 1 ms): the gap exceeds the cap, never spin */
    for (int i = 0; i < 100; i++, t += 1000000)
        aw_on_arrival(&aw, t);
    CHECK(aw_budget(&aw) == 0);

    /* misses shrink the budget; hits grow it back, never past the cap */
    aw_init(&aw, 50000);
    for (int i = 0; i < 100; i++, t += 5000)
        aw_on_arrival(&aw, t);
    uint64_t before = aw_budget(&aw);
    aw_on_spin_end(&aw, 0);
    aw_on_spin_end(&aw, 0);
    aw_on_spin_end(&aw, 0);
    uint64_t after = aw_budget(&aw);
    CHECK(after < before);
    for (int i = 0; i < 50; i++)
        aw_on_spin_end(&aw, 1);
    CHECK(aw_budget(&aw) >= before);
    CHECK(aw_budget(&aw) <= 50000);
    CHECK(aw.hits == 50 && aw.misses == 3);

    /* cores: never more free than online, never negative */
    int f = aw_cores_free(0);
    CHECK(f >= 0);
    printf("%s\n", failures ? "adaptive_wait: FAILED" : "adaptive_wait: ok");
    return failures ? 1 : 0;
}
