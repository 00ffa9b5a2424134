/* etcd_http.c — POSTs to etcd's JSON gateway with libcurl: a pool of easy
 * handles (each keeps its connection alive), one shared current endpoint,
 * failover and backoff until a deadline. */
#include "kv/etcd_http.h"
#include "kv/etcd_codec.h"
#include "kv/kv.h"
#include "common/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ENDPOINTS 16
#define POOL_MAX 64
#define ATTEMPT_TIMEOUT_MS 2000
#define CONNECT_TIMEOUT_MS 1000
#define MAX_REPLY (256u << 20)

struct etcd_conn {
    char *list;
    char *urls[MAX_ENDPOINTS]; /* "http://HOST:PORT" */
    size_t n;
    _Atomic size_t current;
    pthread_mutex_t mu;
    CURL *pool[POOL_MAX];
    size_t npool;
    _Atomic int64_t last_warn_ns;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int64_t etcd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

struct etcd_conn *etcd_conn_new(const char *endpoints, char *err, size_t errlen)
{
    pthread_once(&curl_once, curl_init_once);
    struct etcd_conn *c = calloc(1, sizeof(*c));
    if (!c || !(c->list = strdup(endpoints))) {
        free(c);
        snprintf(err, errlen, "kv: out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    char *copy = strdup(endpoints), *save = NULL;
    if (!copy)
        goto nomem;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(tok, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == tok || !end || *end || port <= 0 || port > 65535 ||
            strcspn(tok, "/?#@ ") != strlen(tok)) {
            snprintf(err, errlen, "kv: bad etcd endpoint '%s' in '%s' (want HOST:PORT)", tok,
                     endpoints);
            free(copy);
            etcd_conn_free(c);
            return NULL;
        }
        if (c->n == MAX_ENDPOINTS) {
            snprintf(err, errlen, "kv: more than %d etcd endpoints in '%s'", MAX_ENDPOINTS,
                     endpoints);
            free(copy);
            etcd_conn_free(c);
            return NULL;
        }
        if (asprintf(&c->urls[c->n], "http://%s", tok) < 0) {
            c->urls[c->n] = NULL;
            free(copy);
            goto nomem;
        }
        c->n++;
    }
    free(copy);
    if (c->n == 0) {
        snprintf(err, errlen, "kv: no etcd endpoint in '%s'", endpoints);
        etcd_conn_free(c);
        return NULL;
    }
    return c;
nomem:
    snprintf(err, errlen, "kv: out of memory");
    etcd_conn_free(c);
    return NULL;
}

void etcd_conn_free(struct etcd_conn *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    for (size_t i = 0; i < c->n; i++)
        free(c->urls[i]);
    pthread_mutex_destroy(&c->mu);
    free(c->list);
    free(c);
}

const char *etcd_conn_endpoints(const struct etcd_conn *c) { return c->list; }

static CURL *handle_get(struct etcd_conn *c)
{
    pthread_mutex_lock(&c->mu);
    CURL *h = c->npool ? c->pool[--c->npool] : NULL;
    pthread_mutex_unlock(&c->mu);
    return h ? h : curl_easy_init();
}

static void handle_put(struct etcd_conn *c, CURL *h)
{
    pthread_mutex_lock(&c->mu);
    if (c->npool < POOL_MAX) {
        c->pool[c->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (h)
        curl_easy_cleanup(h);
}

struct sink {
    char *p;
    size_t len, cap;
    bool overflow;
};

static size_t sink_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink *s = arg;
    size_t n = size * nmemb;
    if (s->len + n + 1 > MAX_REPLY) {
        s->overflow = true;
        return 0; /* makes curl fail the transfer */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *p = realloc(s->p, cap);
        if (!p) {
            s->overflow = true;
            return 0;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->len, data, n);
    s->len += n;
    s->p[s->len] = 0;
    return n;
}

/* Retryable gRPC codes: Unknown (leader changes surface so), DeadlineExceeded
 * ("request timed out"), Aborted, Unavailable (no leader, stopping). */
static bool code_retryable(int code)
{
    return code == 2 || code == 4 || code == 10 || code == 14;
}

static void backoff(unsigned attempt, int64_t deadline_ns)
{
    int64_t ms = 10ll << (attempt < 5 ? attempt : 5); /* 20 ms .. 320 ms */
    ms = ms / 2 + (int64_t)(((uint64_t)etcd_now_ns() >> 10) % (uint64_t)(ms / 2 + 1));
    int64_t left = deadline_ns - etcd_now_ns();
    if (left <= 0)
        return;
    int64_t ns = ms * 1000000ll < left ? ms * 1000000ll : left;
    struct timespec ts = { .tv_sec = ns / 1000000000ll, .tv_nsec = ns % 1000000000ll };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static void move_on(struct etcd_conn *c, size_t from)
{
    size_t expect = from;
    atomic_compare_exchange_strong(&c->current, &expect, (from + 1) % c->n);
}

int etcd_call(struct etcd_conn *c, const char *path, const char *body, size_t len,
              int64_t deadline_ns, struct etcd_reply *reply, bool *maybe_sent, char *why,
              size_t whylen)
{
    reply->body = NULL;
    reply->len = 0;
    char lastwhy[256] = "no attempt made";
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (!hdrs)
        return -ENOMEM;
    int rc = -EIO;
    for (unsigned attempt = 0;; attempt++) {
        int64_t left_ms = (deadline_ns - etcd_now_ns()) / 1000000;
        if (left_ms <= 0 && attempt > 0)
            break;
        if (left_ms < 1)
            left_ms = 1;
        size_t ep = atomic_load(&c->current) % c->n;
        CURL *h = handle_get(c);
        if (!h) {
            rc = -ENOMEM;
            goto out;
        }
        char url[512];
        snprintf(url, sizeof(url), "%s%s", c->urls[ep], path);
        struct sink s = { 0 };
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                         (long)(left_ms < CONNECT_TIMEOUT_MS ? left_ms : CONNECT_TIMEOUT_MS));
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                         (long)(left_ms < ATTEMPT_TIMEOUT_MS ? left_ms : ATTEMPT_TIMEOUT_MS));
        curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        CURLcode cc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        /* The handle keeps its (kept-alive) connection for the next request. */
        curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
        handle_put(c, h);

        if (cc != CURLE_OK) {
            free(s.p);
            if (s.overflow) {
                snprintf(lastwhy, sizeof(lastwhy), "answer larger than %u MiB", MAX_REPLY >> 20);
                rc = -E2BIG;
                goto out;
            }
            /* Nothing reached etcd only when no connection was made. */
            if (cc != CURLE_COULDNT_CONNECT && cc != CURLE_COULDNT_RESOLVE_HOST)
                *maybe_sent = true;
            snprintf(lastwhy, sizeof(lastwhy), "%s: %s", c->urls[ep] + 7,
                     curl_easy_strerror(cc));
            move_on(c, ep);
            backoff(attempt, deadline_ns);
            continue;
        }
        if (status == 200) {
            reply->body = s.p ? s.p : strdup("");
            reply->len = s.len;
            rc = reply->body ? 0 : -ENOMEM;
            goto out;
        }
        int code = -1;
        char msg[200] = "";
        if (!s.p || etcd_decode_error(s.p, s.len, &code, msg, sizeof(msg)) != 0)
            snprintf(msg, sizeof(msg), "HTTP %ld", status);
        free(s.p);
        snprintf(lastwhy, sizeof(lastwhy), "%s: %s", c->urls[ep] + 7, msg);
        if (strstr(msg, "compacted")) {
            rc = -EAGAIN;
            goto out;
        }
        if (strstr(msg, "too large") || strstr(msg, "larger than max") ||
            strstr(msg, "too many operations")) {
            rc = -E2BIG;
            goto out;
        }
        if (strstr(msg, "space exceeded")) {
            rc = -ENOSPC;
            goto out;
        }
        if (code < 0 || code_retryable(code) || strstr(msg, "future revision") || status >= 500) {
            /* The request reached etcd; a timed-out proposal may still apply. */
            *maybe_sent = true;
            move_on(c, ep);
            backoff(attempt, deadline_ns);
            continue;
        }
        rc = -EPROTO;
        LOG_ERROR("kv", "etcd refused %s: %s", path, lastwhy);
        goto out;
    }
    rc = -EIO;
    int64_t now = etcd_now_ns(), last = atomic_load(&c->last_warn_ns);
    if (now - last > 1000000000ll && atomic_compare_exchange_strong(&c->last_warn_ns, &last, now))
        LOG_WARN("kv", "etcd unreachable endpoints=%s last_error=(%s)", c->list, lastwhy);
out:
    curl_slist_free_all(hdrs);
    if (rc && why && whylen)
        snprintf(why, whylen, "%s", lastwhy);
    return rc;
}
