/* loop.c — see loop.h. */
#include "rpc/loop.h"

#include "common/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct loop_task {
    struct loop_task *next;
    void (*fn)(void *arg);
    void *arg;
};

struct loop {
    int epfd;
    struct loop_watch wake_watch; /* the eventfd */
    atomic_bool wake_pending;     /* an eventfd write is outstanding */
    atomic_bool stopping;
    pthread_mutex_t task_lock;
    struct loop_task *task_head, *task_tail;
    uint64_t (*tick)(void *arg);
    void *tick_arg;
    pthread_t thread;
    bool has_thread;
    _Atomic(pthread_t) running_thread;
    atomic_bool running;
};

static void wake_cb(struct loop_watch *w, uint32_t events)
{
    (void)events;
    uint64_t v;
    ssize_t n = read(w->fd, &v, sizeof(v));
    (void)n;
}

struct loop *loop_new(void)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->epfd < 0 || efd < 0) {
        if (l->epfd >= 0)
            close(l->epfd);
        if (efd >= 0)
            close(efd);
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->task_lock, NULL);
    l->wake_watch.fd = efd;
    l->wake_watch.cb = wake_cb;
    loop_add(l, &l->wake_watch, EPOLLIN);
    return l;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    struct loop_task *t = l->task_head;
    while (t) {
        struct loop_task *next = t->next;
        free(t);
        t = next;
    }
    close(l->wake_watch.fd);
    close(l->epfd);
    pthread_mutex_destroy(&l->task_lock);
    free(l);
}

int loop_add(struct loop *l, struct loop_watch *w, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = w };
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0 ? -errno : 0;
}

int loop_mod(struct loop *l, struct loop_watch *w, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = w };
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0 ? -errno : 0;
}

void loop_del(struct loop *l, struct loop_watch *w)
{
    (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

void loop_set_tick(struct loop *l, uint64_t (*tick)(void *arg), void *arg)
{
    l->tick = tick;
    l->tick_arg = arg;
}

void loop_wake(struct loop *l)
{
    /* One eventfd write per sleep is enough; the loop clears the flag before
     * it looks for work, so work published before a skipped write is seen. */
    if (!atomic_exchange(&l->wake_pending, true)) {
        uint64_t one = 1;
        ssize_t n = write(l->wake_watch.fd, &one, sizeof(one));
        (void)n;
    }
}

int loop_post(struct loop *l, void (*fn)(void *arg), void *arg)
{
    struct loop_task *t = malloc(sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->next = NULL;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&l->task_lock);
    if (l->task_tail)
        l->task_tail->next = t;
    else
        l->task_head = t;
    l->task_tail = t;
    pthread_mutex_unlock(&l->task_lock);
    loop_wake(l);
    return 0;
}

static void run_tasks(struct loop *l)
{
    pthread_mutex_lock(&l->task_lock);
    struct loop_task *t = l->task_head;
    l->task_head = l->task_tail = NULL;
    pthread_mutex_unlock(&l->task_lock);
    while (t) {
        struct loop_task *next = t->next;
        t->fn(t->arg);
        free(t);
        t = next;
    }
}

bool loop_in_thread(const struct loop *l)
{
    return atomic_load(&l->running) && pthread_equal(atomic_load(&l->running_thread), pthread_self());
}

void loop_run(struct loop *l)
{
    atomic_store(&l->running_thread, pthread_self());
    atomic_store(&l->running, true);
    struct epoll_event evs[64];
    while (!atomic_load(&l->stopping)) {
        atomic_store(&l->wake_pending, false);
        run_tasks(l);
        uint64_t deadline = l->tick ? l->tick(l->tick_arg) : 0;
        struct timespec ts, *tsp = NULL;
        pthread_mutex_lock(&l->task_lock);
        bool more = l->task_head != NULL;
        pthread_mutex_unlock(&l->task_lock);
        if (more || atomic_load(&l->stopping)) {
            ts.tv_sec = 0;
            ts.tv_nsec = 0;
            tsp = &ts;
        } else if (deadline) {
            uint64_t now = now_ns();
            uint64_t d = deadline > now ? deadline - now : 0;
            ts.tv_sec = (time_t)(d / 1000000000ull);
            ts.tv_nsec = (long)(d % 1000000000ull);
            tsp = &ts;
        }
        int n = epoll_pwait2(l->epfd, evs, (int)ARRAY_SIZE(evs), tsp, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            struct loop_watch *w = evs[i].data.ptr;
            w->cb(w, evs[i].events);
        }
    }
    run_tasks(l);
    atomic_store(&l->running, false);
}

void loop_stop(struct loop *l)
{
    atomic_store(&l->stopping, true);
    atomic_store(&l->wake_pending, false);
    loop_wake(l);
}

static void *loop_thread_main(void *arg)
{
    loop_run(arg);
    return NULL;
}

int loop_start_thread(struct loop *l, const char *name)
{
    int rc = pthread_create(&l->thread, NULL, loop_thread_main, l);
    if (rc)
        return -rc;
    l->has_thread = true;
    if (name) {
        char n[16];
        strncpy(n, name, sizeof(n) - 1);
        n[sizeof(n) - 1] = '\0';
        pthread_setname_np(l->thread, n);
    }
    return 0;
}

void loop_join(struct loop *l)
{
    if (l->has_thread) {
        pthread_join(l->thread, NULL);
        l->has_thread = false;
    }
}
