/* timer.h — one thread that runs callbacks after a delay.
 *
 * The client library's retries wait (backoff) and may block briefly
 * (a routing refresh); neither may happen on the RPC loop thread or a FUSE
 * worker, so they are handed to this thread. Callbacks run one at a time,
 * in due order. ctimer_free() runs every callback still queued at once with
 * cancelled = 1, so each scheduled callback runs exactly once.
 */
#ifndef VALORFS_CLIENT_TIMER_H
#define VALORFS_CLIENT_TIMER_H

#include <stdint.h>

struct ctimer;
typedef void (*ctimer_fn)(void *arg, int cancelled);

struct ctimer *ctimer_new(void);
void ctimer_free(struct ctimer *t);
/* Run fn(arg, 0) on the timer thread after delay_ms. 0, or -ENOMEM /
 * -ESHUTDOWN (then fn does not run). */
int ctimer_after(struct ctimer *t, uint32_t delay_ms, ctimer_fn fn, void *arg);

#endif
