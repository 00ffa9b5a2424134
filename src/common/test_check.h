/* test_check.h — the check of the unit tests, for test programs only.
 *
 * CHECK(cond) reports a failed condition with its file and line and counts
 * it; the test keeps going so one run shows every failure, and main()
 * returns failures != 0 at the end. Thread-safe enough for tests: the count
 * is atomic. */
#ifndef VALORFS_COMMON_TEST_CHECK_H
#define VALORFS_COMMON_TEST_CHECK_H

#include <stdatomic.h>
#include <stdio.h>

static _Atomic int failures;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
            atomic_fetch_add(&failures, 1);                                           \
        }                                                                             \
    } while (0)

#endif
