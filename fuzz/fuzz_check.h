/* fuzz_check.h — FUZZ_CHECK(cond): an invariant of a fuzz target; a
 * violation prints where and aborts, which libFuzzer reports as a crash
 * with the input that caused it. Shared by every target. */
#ifndef VALORFS_FUZZ_CHECK_H
#define VALORFS_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                                \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

#endif
