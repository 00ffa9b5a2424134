/* loop.h — one epoll event loop driven by one thread.
 *
 * Contract. Watches (fd + callback) are added, modified and removed from any
 * thread (epoll_ctl is thread-safe); their callbacks run on the loop thread.
 * loop_post() queues a function to run on the loop thread and wakes it
 * (eventfd); loop_wake() only wakes it. A loop may have one "tick" function,
 * run on the loop thread before every sleep: it does time-based work and
 * returns the next CLOCK_MONOTONIC deadline in ns it needs to run again at
 * (0 = none); whoever makes an earlier deadline must loop_wake() the loop.
 * loop_stop() makes loop_run() return after the current iteration.
 */
#ifndef VALORFS_RPC_LOOP_H
#define VALORFS_RPC_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_watch;
typedef void (*loop_watch_fn)(struct loop_watch *w, uint32_t events);

struct loop_watch {
    int fd;
    loop_watch_fn cb;
};

struct loop *loop_new(void);
void loop_free(struct loop *l); /* after loop_run() returned (or never ran) */

int loop_add(struct loop *l, struct loop_watch *w, uint32_t events);
int loop_mod(struct loop *l, struct loop_watch *w, uint32_t events);
void loop_del(struct loop *l, struct loop_watch *w);

void loop_set_tick(struct loop *l, uint64_t (*tick)(void *arg), void *arg);
/* 0 or -ENOMEM. fn runs on the loop thread, in posting order. */
int loop_post(struct loop *l, void (*fn)(void *arg), void *arg);
void loop_wake(struct loop *l);

void loop_run(struct loop *l);
void loop_stop(struct loop *l);
bool loop_in_thread(const struct loop *l);

/* Start a thread running loop_run(); loop_join() waits for it after loop_stop(). */
int loop_start_thread(struct loop *l, const char *name);
void loop_join(struct loop *l);

#endif
