/*
 * hiredis-baseline: the "ceiling" for the ChannelsRedis benchmark.
 *
 * A single-threaded C program (two threads with --consumer-thread, below) on hiredis (0.14.1
 * async API) + libevent that runs the same workloads as the Swift layer's benchmark
 * (channels-redis-bench) and the Python peer (.ci/bench/peer_bench.py), against a Redis server
 * on 127.0.0.1, and prints ONE JSON line.
 * The JSON schema is documented at the top of .ci/bench/run.
 *
 * One event_base, two async contexts: a publisher (never subscribes) and a subscriber (only
 * SUBSCRIBE). The payload is the msgpack encoding channels_redis produces for
 *     {"type": "test.message", "text": <50-byte str>}
 * precomputed once; the first 20 bytes of "text" carry a zero-padded decimal CLOCK_MONOTONIC
 * timestamp in nanoseconds (zeros outside the latency workload).
 *
 * Workloads:
 *   throughput  PUBLISH --count messages to one channel this process is subscribed to, keeping
 *               --window PUBLISHes in flight; messages/s received end to end.
 *   pingpong    publish one, wait until it is received, repeat --count times.
 *   latency     publish at --rate msg/s for --seconds, each at its absolute deadline
 *               start + i/rate (a late sender catches up instead of drifting, which limits
 *               coordinated omission); the payload carries the send time; p50/p99/p99.9 one-way
 *               latency in microseconds, plus achieved_rate, recv_rate and max_send_lag_us (how
 *               far behind its schedule the sender ever was).
 *   fanout      like throughput, but every received message is delivered to --members
 *               in-process members (copy + count per member): "one subscription, K local
 *               deliveries", the ceiling of a group send to K local channels.
 *   scale       subscribe to --extra-channels other channels first (batched SUBSCRIBEs), then
 *               run throughput.
 *
 * --consumer-thread (latency and pingpong only): the I/O thread does not take the receive time
 * itself. It copies each received payload into a queue (a ring under a mutex) that one consumer
 * pthread drains, blocking on a condition variable while the queue is empty, and signals that
 * condition variable only when the consumer is waiting on it (the consumer's "waiting" flag, under
 * the mutex), as a runtime wakes a sleeping worker thread. The consumer takes the receive time
 * (same clock), parses the payload and records the sample: the hand-off a Swift consumer task on
 * the global executor pays, done in C, the bound of the Swift rows that pay it. The consumer tells
 * the I/O thread through a pipe the I/O thread watches (libevent's threading is not enabled: every
 * libevent and hiredis call stays on the I/O thread): "all samples taken" (finish), "a payload was
 * not ours" (fail) and, for pingpong, "received, send the next one" (a second hand-off, as a Swift
 * task's send to the loop thread). The samples are written only by the consumer during the run and
 * read after it has been joined. The JSON carries "consumer_thread" (true|false) and, when true,
 * "consumer_wakeups" (signals sent to the waiting consumer) and "queue_full_waits" (the I/O thread
 * blocked because the consumer was QUEUE_SLOTS messages behind; 0 unless it fell far behind).
 *
 * hiredis 0.14.1 notes (see shared/DESIGN.md section 3): every subscription callback checks the
 * reply's kind and channel itself; nothing but SUBSCRIBE is sent on the subscriber; nothing is
 * freed in the connect callback; contexts are freed only after the event loop has returned.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

/* ------------------------------------------------------------------------------------------ */
/* payload                                                                                    */

enum { TEXT_LEN = 50, TS_DIGITS = 20 };

/* 82                          map of 2
 * a4 "type"  ac "test.message"
 * a4 "text"  d9 32 <50 bytes>  (str8: msgpack-python >= 1.0 uses str8 for 32..255 bytes) */
static const unsigned char PAYLOAD_HEAD[] = {
    0x82,
    0xa4, 't', 'y', 'p', 'e',
    0xac, 't', 'e', 's', 't', '.', 'm', 'e', 's', 's', 'a', 'g', 'e',
    0xa4, 't', 'e', 'x', 't',
    0xd9, TEXT_LEN,
};
enum { HEAD_LEN = sizeof(PAYLOAD_HEAD), PAYLOAD_LEN = HEAD_LEN + TEXT_LEN };

static void payload_init(unsigned char *p) {
    memcpy(p, PAYLOAD_HEAD, HEAD_LEN);
    memset(p + HEAD_LEN, '0', TS_DIGITS);
    memset(p + HEAD_LEN + TS_DIGITS, 'x', TEXT_LEN - TS_DIGITS);
}

static void payload_set_ts(unsigned char *p, uint64_t ts) {
    unsigned char *d = p + HEAD_LEN + TS_DIGITS;
    for (int i = 0; i < TS_DIGITS; i++) {
        *--d = (unsigned char)('0' + (ts % 10));
        ts /= 10;
    }
}

/* Returns 0 and the timestamp if `data` is our payload, -1 otherwise. */
static int payload_parse(const char *data, size_t len, uint64_t *ts) {
    if (len != PAYLOAD_LEN || memcmp(data, PAYLOAD_HEAD, HEAD_LEN) != 0) return -1;
    uint64_t v = 0;
    for (int i = 0; i < TS_DIGITS; i++) {
        char c = data[HEAD_LEN + i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (uint64_t)(c - '0');
    }
    *ts = v;
    return 0;
}

/* CPU time (user + system) of the process so far, ns: "cpu_us_per_msg". */
static uint64_t cpu_ns(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return ((uint64_t)usage.ru_utime.tv_sec + (uint64_t)usage.ru_stime.tv_sec) * 1000000000ull
        + ((uint64_t)usage.ru_utime.tv_usec + (uint64_t)usage.ru_stime.tv_usec) * 1000ull;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------------ */
/* state                                                                                      */

enum workload { W_THROUGHPUT, W_PINGPONG, W_LATENCY, W_FANOUT, W_SCALE };
static const char *const WORKLOAD_NAMES[] = {"throughput", "pingpong", "latency", "fanout", "scale"};

struct member {
    uint64_t count;
    size_t len;
    unsigned char last[PAYLOAD_LEN];
};

struct bench {
    /* options */
    const char *host;
    int port;
    enum workload workload;
    uint64_t count;
    uint64_t window;
    double rate;
    double seconds;
    uint64_t members;
    uint64_t extra_channels;
    double timeout;
    int consumer_thread;

    struct event_base *base;
    redisAsyncContext *pub;
    redisAsyncContext *sub;
    struct event *timeout_ev;
    struct event *tick_ev;  /* latency: send timer */
    struct event *grace_ev; /* latency: wait for stragglers after the last send */
    struct event *notify_ev;/* --consumer-thread: the consumer's messages (read end of Q.notify) */

    char channel[64];
    unsigned char payload[PAYLOAD_LEN];

    uint64_t subscribed;    /* confirmed SUBSCRIBE replies */
    uint64_t to_subscribe;  /* 1 + extra_channels */
    uint64_t sub_start_ns, sub_end_ns;
    int warming;
    int started;

    uint64_t sent, acked, in_flight, received, foreign;
    uint64_t start_ns, end_ns;
    uint64_t start_cpu_ns, end_cpu_ns;

    /* latency / pingpong samples, nanoseconds */
    uint64_t *samples;
    uint64_t nsamples, cap_samples;
    uint64_t ping_sent_ns;   /* pingpong: when the message in flight was sent */
    uint64_t max_send_lag_ns;/* latency: how late the sender was against its schedule */
    uint64_t last_sent_ns;   /* latency: when the last message was actually sent */
    uint64_t last_recv_ns;   /* latency: when the last message was received */

    struct member *mem;

    int done;
    int failed;
    char error[256];
};

static struct bench B;

/* --consumer-thread: the queue from the I/O thread to the consumer thread, and the consumer's own
 * state (its own cache lines: the I/O thread writes B's fields meanwhile). */
enum { QUEUE_SLOTS = 1024 };
struct item {
    uint64_t ping_sent_ns; /* pingpong: when the I/O thread sent this message */
    unsigned char payload[PAYLOAD_LEN];
};
static struct queue {
    pthread_mutex_t mu;
    pthread_cond_t nonempty; /* the consumer waits on it while the queue is empty */
    pthread_cond_t nonfull;  /* the I/O thread waits on it while the ring is full */
    uint64_t head, tail;     /* items [head, tail) are queued, in slots[i % QUEUE_SLOTS] */
    int consumer_waiting;    /* the consumer is (about to be) blocked on nonempty */
    int producer_waiting;    /* the I/O thread is blocked on nonfull */
    int stop;
    uint64_t wakeups;        /* nonempty signals (I/O thread, under mu) */
    uint64_t full_waits;     /* I/O thread, under mu */
    int notify[2];           /* pipe: consumer -> I/O thread, one byte per note (NOTE_*) */
    pthread_t thread;
    struct item slots[QUEUE_SLOTS];
} Q = {.mu = PTHREAD_MUTEX_INITIALIZER, .nonempty = PTHREAD_COND_INITIALIZER, .nonfull = PTHREAD_COND_INITIALIZER,
       .notify = {-1, -1}};

/* written only by the consumer thread while it runs; read by the I/O thread after joining it */
static struct consumer {
    _Alignas(64) uint64_t consumed;
    uint64_t nsamples;
    uint64_t last_recv_ns;
    int bad_payload;
} C;

static void fail(const char *what, const char *detail) {
    if (!B.failed) {
        B.failed = 1;
        snprintf(B.error, sizeof B.error, "%s%s", what, detail ? detail : "");
    }
    event_base_loopbreak(B.base);
}

static void finish(void) {
    if (!B.done) {
        B.done = 1;
        B.end_ns = now_ns();
        B.end_cpu_ns = cpu_ns();
    }
    event_base_loopbreak(B.base);
}

/* ------------------------------------------------------------------------------------------ */
/* publishing                                                                                 */

static void on_publish_reply(redisAsyncContext *ac, void *r, void *privdata);

static void publish_payload(void) {
    const char *argv[3] = {"PUBLISH", B.channel, (const char *)B.payload};
    size_t argvlen[3] = {7, strlen(B.channel), PAYLOAD_LEN};
    if (redisAsyncCommandArgv(B.pub, on_publish_reply, NULL, 3, argv, argvlen) != REDIS_OK) {
        fail("PUBLISH could not be queued", "");
        return;
    }
    B.sent++;
    B.in_flight++;
}

static void fill_window(void) {
    while (!B.failed && B.in_flight < B.window && B.sent < B.count) publish_payload();
}

static void on_publish_reply(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    (void)privdata;
    redisReply *reply = r;
    if (reply == NULL) return; /* context going away */
    if (reply->type != REDIS_REPLY_INTEGER) {
        fail("unexpected PUBLISH reply: ", reply->type == REDIS_REPLY_ERROR ? reply->str : "?");
        return;
    }
    B.acked++;
    B.in_flight--;
    if (!B.started) return; /* the warm-up message */
    switch (B.workload) {
    case W_THROUGHPUT:
    case W_FANOUT:
    case W_SCALE:
        fill_window();
        break;
    default:
        break;
    }
}

/* latency: send everything whose deadline has passed, then sleep until the next deadline */
static uint64_t latency_total(void) { return (uint64_t)(B.rate * B.seconds + 0.5); }

static uint64_t deadline_ns(uint64_t i) {
    return B.start_ns + (uint64_t)((double)i * 1e9 / B.rate);
}

static void on_grace(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    finish(); /* report with whatever arrived; "received" < "sent" shows the loss */
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    uint64_t total = latency_total();
    uint64_t now = now_ns();
    while (B.sent < total && deadline_ns(B.sent) <= now) {
        uint64_t d = deadline_ns(B.sent);
        uint64_t t = now_ns();
        if (t - d > B.max_send_lag_ns) B.max_send_lag_ns = t - d;
        payload_set_ts(B.payload, t);
        B.last_sent_ns = t;
        publish_payload();
        if (B.failed) return;
    }
    if (B.sent < total) {
        uint64_t wait = deadline_ns(B.sent) - now;
        struct timeval tv = {(time_t)(wait / 1000000000ull), (suseconds_t)((wait % 1000000000ull) / 1000)};
        evtimer_add(B.tick_ev, &tv);
    } else {
        struct timeval tv = {2, 0};
        evtimer_add(B.grace_ev, &tv);
    }
}

static void start_workload(void) {
    B.started = 1;
    B.sent = 0; /* forget the warm-up message */
    B.received = 0;
    B.start_ns = now_ns();
    B.start_cpu_ns = cpu_ns();
    switch (B.workload) {
    case W_THROUGHPUT:
    case W_FANOUT:
    case W_SCALE:
        fill_window();
        break;
    case W_PINGPONG:
        B.ping_sent_ns = now_ns();
        publish_payload();
        break;
    case W_LATENCY:
        on_tick(-1, 0, NULL);
        break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* subscriber                                                                                 */

static int reply_is(const redisReply *e, const char *s) {
    size_t n = strlen(s);
    return e->type == REDIS_REPLY_STRING && e->len == n && memcmp(e->str, s, n) == 0;
}

static void queue_push(const char *data, uint64_t ping_sent_ns);

static void on_message(const char *data, size_t len) {
    if (B.consumer_thread) {
        /* no timestamp here: the consumer thread takes it once it has the message */
        if (len != PAYLOAD_LEN) {
            fail("received a payload that is not ours", "");
            return;
        }
        B.received++;
        queue_push(data, B.ping_sent_ns);
        return;
    }
    uint64_t now = now_ns();
    uint64_t ts = 0;
    if (payload_parse(data, len, &ts) != 0) {
        fail("received a payload that is not ours", "");
        return;
    }
    B.received++;
    switch (B.workload) {
    case W_THROUGHPUT:
    case W_SCALE:
        if (B.received == B.count) finish();
        break;
    case W_FANOUT:
        for (uint64_t i = 0; i < B.members; i++) {
            struct member *m = &B.mem[i];
            memcpy(m->last, data, len);
            m->len = len;
            m->count++;
        }
        if (B.received == B.count) finish();
        break;
    case W_PINGPONG:
        if (B.nsamples < B.cap_samples) B.samples[B.nsamples++] = now - B.ping_sent_ns;
        if (B.received == B.count) {
            finish();
        } else {
            B.ping_sent_ns = now_ns();
            publish_payload();
        }
        break;
    case W_LATENCY:
        if (B.nsamples < B.cap_samples) B.samples[B.nsamples++] = now >= ts ? now - ts : 0;
        B.last_recv_ns = now;
        if (B.received == latency_total()) finish();
        break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* --consumer-thread                                                                          */

enum { NOTE_NEXT = 'n', NOTE_FINISH = 'f', NOTE_BAD = 'e' };

/* consumer thread -> I/O thread (write(2) on a pipe is thread-safe; the I/O thread reads it) */
static void notify_io(char note) {
    ssize_t n;
    do {
        n = write(Q.notify[1], &note, 1);
    } while (n < 0 && errno == EINTR);
    /* n < 0 with EAGAIN: 64 KiB of notes unread, which one consumer of one I/O thread cannot reach */
}

/* I/O thread, from on_message */
static void queue_push(const char *data, uint64_t ping_sent_ns) {
    pthread_mutex_lock(&Q.mu);
    while (Q.tail - Q.head == QUEUE_SLOTS) {
        Q.full_waits++;
        Q.producer_waiting = 1;
        pthread_cond_wait(&Q.nonfull, &Q.mu);
    }
    struct item *it = &Q.slots[Q.tail % QUEUE_SLOTS];
    it->ping_sent_ns = ping_sent_ns;
    memcpy(it->payload, data, PAYLOAD_LEN);
    Q.tail++;
    if (Q.consumer_waiting) { /* only a sleeping consumer needs the signal */
        Q.consumer_waiting = 0;
        Q.wakeups++;
        pthread_cond_signal(&Q.nonempty);
    }
    pthread_mutex_unlock(&Q.mu);
}

/* consumer thread: one message, `now` taken as soon as it was dequeued */
static void consume(const struct item *it, uint64_t now) {
    uint64_t ts = 0;
    if (payload_parse((const char *)it->payload, PAYLOAD_LEN, &ts) != 0) {
        if (!C.bad_payload) {
            C.bad_payload = 1;
            notify_io(NOTE_BAD);
        }
        return;
    }
    C.consumed++;
    if (B.workload == W_PINGPONG) {
        if (C.nsamples < B.cap_samples) B.samples[C.nsamples++] = now - it->ping_sent_ns;
        notify_io(C.consumed == B.count ? NOTE_FINISH : NOTE_NEXT);
    } else {
        if (C.nsamples < B.cap_samples) B.samples[C.nsamples++] = now >= ts ? now - ts : 0;
        C.last_recv_ns = now;
        if (C.consumed == latency_total()) notify_io(NOTE_FINISH);
    }
}

static void *consumer_main(void *arg) {
    (void)arg;
    struct item it;
    pthread_mutex_lock(&Q.mu);
    for (;;) {
        while (Q.head == Q.tail && !Q.stop) {
            Q.consumer_waiting = 1;
            pthread_cond_wait(&Q.nonempty, &Q.mu);
        }
        if (Q.stop) break; /* set by the I/O thread after its loop returned: nothing more counts */
        it = Q.slots[Q.head % QUEUE_SLOTS];
        Q.head++;
        if (Q.producer_waiting) {
            Q.producer_waiting = 0;
            pthread_cond_signal(&Q.nonfull);
        }
        pthread_mutex_unlock(&Q.mu);
        consume(&it, now_ns());
        pthread_mutex_lock(&Q.mu);
    }
    pthread_mutex_unlock(&Q.mu);
    return NULL;
}

/* I/O thread: the consumer's notes */
static void on_notify(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    (void)arg;
    char notes[64];
    ssize_t n;
    while ((n = read(fd, notes, sizeof notes)) > 0 || (n < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < n; i++) {
            if (B.done || B.failed) return;
            switch (notes[i]) {
            case NOTE_NEXT:
                B.ping_sent_ns = now_ns();
                publish_payload();
                break;
            case NOTE_FINISH:
                finish();
                break;
            case NOTE_BAD:
                fail("received a payload that is not ours", "");
                break;
            }
        }
    }
}

/* 0, or an errno value */
static int consumer_start(void) {
    if (pipe(Q.notify) != 0) return errno;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(Q.notify[i], F_GETFL);
        if (fl < 0 || fcntl(Q.notify[i], F_SETFL, fl | O_NONBLOCK) != 0) return errno;
        if (fcntl(Q.notify[i], F_SETFD, FD_CLOEXEC) != 0) return errno;
    }
    B.notify_ev = event_new(B.base, Q.notify[0], EV_READ | EV_PERSIST, on_notify, NULL);
    if (!B.notify_ev || event_add(B.notify_ev, NULL) != 0) return ENOMEM;
    return pthread_create(&Q.thread, NULL, consumer_main, NULL);
}

/* I/O thread, after its loop returned: stop and join the consumer; its figures are ours then */
static void consumer_stop(void) {
    pthread_mutex_lock(&Q.mu);
    Q.stop = 1;
    pthread_cond_signal(&Q.nonempty);
    pthread_mutex_unlock(&Q.mu);
    pthread_join(Q.thread, NULL);
    B.received = C.consumed;
    B.nsamples = C.nsamples;
    B.last_recv_ns = C.last_recv_ns;
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    (void)privdata;
    redisReply *reply = r;
    if (reply == NULL) return; /* context going away */
    if (reply->type == REDIS_REPLY_ERROR) {
        fail("subscriber error: ", reply->str);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
    redisReply *kind = reply->element[0];
    redisReply *chan = reply->element[1];
    if (reply_is(kind, "message")) {
        redisReply *data = reply->element[2];
        if (!reply_is(chan, B.channel)) {
            B.foreign++;
            return;
        }
        if (data->type != REDIS_REPLY_STRING) return;
        if (B.started) {
            on_message(data->str, data->len);
        } else if (B.warming) {
            B.warming = 0;
            start_workload();
        }
    } else if (reply_is(kind, "subscribe")) {
        B.subscribed++;
        if (B.subscribed == B.to_subscribe && !B.started && !B.warming) {
            /* one message there and back before the clock starts, as the other programs do */
            B.sub_end_ns = now_ns();
            B.warming = 1;
            publish_payload();
        }
    }
}

static void on_connect(const redisAsyncContext *ac, int status) {
    /* 0.14.1: never free or disconnect here; on failure hiredis frees the context itself */
    if (status != REDIS_OK) {
        if (ac == B.pub) B.pub = NULL;
        if (ac == B.sub) B.sub = NULL;
        fail("connect failed: ", ac->errstr);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    if (ac == B.pub) B.pub = NULL;
    if (ac == B.sub) B.sub = NULL;
    if (status != REDIS_OK && !B.done) fail("disconnected: ", ac->errstr);
}

static void subscribe_all(void) {
    /* the bench channel first, then the extra channels in batches of many names per SUBSCRIBE */
    const char *argv1[2] = {"SUBSCRIBE", B.channel};
    size_t len1[2] = {9, strlen(B.channel)};
    if (redisAsyncCommandArgv(B.sub, on_sub_reply, NULL, 2, argv1, len1) != REDIS_OK) {
        fail("SUBSCRIBE could not be queued", "");
        return;
    }
    enum { BATCH = 1000, NAME = 48 };
    static char names[BATCH][NAME];
    static const char *argv[BATCH + 1];
    static size_t lens[BATCH + 1];
    uint64_t done = 0;
    while (done < B.extra_channels) {
        int n = 0;
        argv[0] = "SUBSCRIBE";
        lens[0] = 9;
        while (n < BATCH && done < B.extra_channels) {
            int l = snprintf(names[n], NAME, "asgispecific.extra%d.%" PRIu64, (int)getpid(), done);
            argv[n + 1] = names[n];
            lens[n + 1] = (size_t)l;
            n++;
            done++;
        }
        if (redisAsyncCommandArgv(B.sub, on_sub_reply, NULL, n + 1, argv, lens) != REDIS_OK) {
            fail("SUBSCRIBE could not be queued", "");
            return;
        }
    }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    char detail[160];
    snprintf(detail, sizeof detail, "subscribed %" PRIu64 "/%" PRIu64 ", sent %" PRIu64 ", received %" PRIu64,
             B.subscribed, B.to_subscribe, B.sent, B.received);
    fail("timed out: ", detail);
}

/* ------------------------------------------------------------------------------------------ */
/* output                                                                                     */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* nearest-rank percentile, in microseconds */
static double pct_us(const uint64_t *sorted, uint64_t n, double p) {
    if (n == 0) return 0;
    double rank = p / 100.0 * (double)n;
    uint64_t k = (uint64_t)rank;
    if ((double)k < rank) k++;
    if (k < 1) k = 1;
    if (k > n) k = n;
    return (double)sorted[k - 1] / 1000.0;
}

static void print_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void print_result(void) {
    const char *w = WORKLOAD_NAMES[B.workload];
    if (B.failed) {
        printf("{\"impl\":\"c-hiredis\",\"workload\":\"%s\",\"ok\":false,\"error\":", w);
        print_json_string(B.error);
        printf("}\n");
        return;
    }
    double secs = (double)(B.end_ns - B.start_ns) / 1e9;
    if (secs <= 0) secs = 1e-9;
    double cpu_us_per_msg = (double)(B.end_cpu_ns - B.start_cpu_ns) / 1e3 / (double)(B.count ? B.count : 1);
    printf("{\"impl\":\"c-hiredis\",\"workload\":\"%s\",\"ok\":true", w);
    printf(",\"consumer_thread\":%s", B.consumer_thread ? "true" : "false");
    if (B.consumer_thread)
        printf(",\"consumer_wakeups\":%" PRIu64 ",\"queue_full_waits\":%" PRIu64, Q.wakeups, Q.full_waits);
    switch (B.workload) {
    case W_THROUGHPUT:
    case W_SCALE:
        printf(",\"count\":%" PRIu64 ",\"senders\":1,\"window\":%" PRIu64, B.count, B.window);
        if (B.workload == W_SCALE)
            printf(",\"extra_channels\":%" PRIu64 ",\"subscribe_seconds\":%.4f", B.extra_channels,
                   (double)(B.sub_end_ns - B.sub_start_ns) / 1e9);
        printf(",\"seconds\":%.4f,\"msgs_per_sec\":%.1f", secs, (double)B.count / secs);
        printf(",\"cpu_us_per_msg\":%.3f", cpu_us_per_msg);
        break;
    case W_PINGPONG:
        qsort(B.samples, B.nsamples, sizeof *B.samples, cmp_u64);
        printf(",\"count\":%" PRIu64 ",\"seconds\":%.4f,\"msgs_per_sec\":%.1f,\"rtt_p50_us\":%.1f,\"rtt_p99_us\":%.1f",
               B.count, secs, (double)B.count / secs, pct_us(B.samples, B.nsamples, 50),
               pct_us(B.samples, B.nsamples, 99));
        printf(",\"cpu_us_per_msg\":%.3f", cpu_us_per_msg);
        break;
    case W_LATENCY: {
        qsort(B.samples, B.nsamples, sizeof *B.samples, cmp_u64);
        double send_secs = B.sent > 1 ? (double)(B.last_sent_ns - B.start_ns) / 1e9 : 0.0;
        printf(",\"rate\":%.0f,\"seconds\":%.3f,\"sent\":%" PRIu64 ",\"received\":%" PRIu64, B.rate, B.seconds, B.sent,
               B.received);
        double recv_secs = B.received ? (double)(B.last_recv_ns - B.start_ns) / 1e9 : 0.0;
        printf(",\"achieved_rate\":%.1f,\"recv_rate\":%.1f", send_secs > 0 ? (double)(B.sent - 1) / send_secs : 0.0,
               recv_secs > 0 ? (double)B.received / recv_secs : 0.0);
        printf(",\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"max_send_lag_us\":%.1f",
               pct_us(B.samples, B.nsamples, 50), pct_us(B.samples, B.nsamples, 99),
               pct_us(B.samples, B.nsamples, 99.9), pct_us(B.samples, B.nsamples, 100),
               (double)B.max_send_lag_ns / 1000.0);
        break;
    }
    case W_FANOUT: {
        uint64_t deliveries = 0;
        for (uint64_t i = 0; i < B.members; i++) deliveries += B.mem[i].count;
        printf(",\"members\":%" PRIu64 ",\"count\":%" PRIu64 ",\"window\":%" PRIu64 ",\"deliveries\":%" PRIu64
               ",\"seconds\":%.4f,\"msgs_per_sec\":%.1f,\"deliveries_per_sec\":%.1f",
               B.members, B.count, B.window, deliveries, secs, (double)B.count / secs, (double)deliveries / secs);
        printf(",\"cpu_us_per_msg\":%.3f", cpu_us_per_msg);
        break;
    }
    }
    printf("}\n");
}

/* ------------------------------------------------------------------------------------------ */
/* main                                                                                       */

static void usage(FILE *f) {
    fprintf(f,
            "usage: hiredis-baseline [--host H] [--port P] --workload throughput|pingpong|latency|fanout|scale\n"
            "                        [--count N] [--window W] [--rate R] [--seconds S] [--members K]\n"
            "                        [--extra-channels K] [--timeout S] [--consumer-thread] [--json]\n"
            "                        [--dump-payload]\n"
            "--consumer-thread (latency, pingpong): the I/O thread hands each received message to a\n"
            "consumer thread (mutex + condition variable queue; the consumer sleeps while it is empty),\n"
            "which takes the receive time and records the sample: the hand-off of a Swift consumer task.\n"
            "Prints one JSON line (schema: .ci/bench/run). Exit status 0 on success, 1 on a failed run,\n"
            "2 on bad arguments.\n");
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || *s == '-') return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *s == '\0' || *end != '\0' || !(v > 0)) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    B.host = "127.0.0.1";
    B.port = 6379;
    B.workload = W_THROUGHPUT;
    B.count = 200000;
    B.window = 1000;
    B.rate = 1000;
    B.seconds = 3;
    B.members = 10;
    B.extra_channels = 0;
    B.timeout = 120;
    int workload_set = 0, dump = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        uint64_t u = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            continue; /* always JSON; accepted for symmetry with the other programs */
        } else if (!strcmp(a, "--dump-payload")) {
            dump = 1;
            continue;
        } else if (!strcmp(a, "--consumer-thread")) {
            B.consumer_thread = 1;
            continue;
        } else if (v == NULL) {
            bad = 1;
        } else if (!strcmp(a, "--host")) {
            B.host = v;
        } else if (!strcmp(a, "--port")) {
            bad = parse_u64(v, &u) || u == 0 || u > 65535;
            B.port = (int)u;
        } else if (!strcmp(a, "--workload")) {
            bad = 1;
            for (int w = 0; w <= W_SCALE; w++)
                if (!strcmp(v, WORKLOAD_NAMES[w])) {
                    B.workload = (enum workload)w;
                    bad = 0;
                    workload_set = 1;
                }
        } else if (!strcmp(a, "--count")) {
            bad = parse_u64(v, &B.count) || B.count == 0;
        } else if (!strcmp(a, "--window")) {
            bad = parse_u64(v, &B.window) || B.window == 0;
        } else if (!strcmp(a, "--rate")) {
            bad = parse_double(v, &B.rate);
        } else if (!strcmp(a, "--seconds")) {
            bad = parse_double(v, &B.seconds);
        } else if (!strcmp(a, "--members")) {
            bad = parse_u64(v, &B.members) || B.members == 0;
        } else if (!strcmp(a, "--extra-channels")) {
            bad = parse_u64(v, &B.extra_channels);
        } else if (!strcmp(a, "--timeout")) {
            bad = parse_double(v, &B.timeout);
        } else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "hiredis-baseline: bad argument %s %s\n", a, v ? v : "");
            usage(stderr);
            return 2;
        }
        i++;
    }

    payload_init(B.payload);
    if (dump) {
        for (int i = 0; i < PAYLOAD_LEN; i++) printf("%02x", B.payload[i]);
        printf("\n");
        return 0;
    }
    if (!workload_set) {
        usage(stderr);
        return 2;
    }
    if (B.consumer_thread && B.workload != W_LATENCY && B.workload != W_PINGPONG) {
        fprintf(stderr, "hiredis-baseline: --consumer-thread is for the latency and pingpong workloads\n");
        return 2;
    }
    if (B.workload == W_LATENCY && latency_total() == 0) {
        fprintf(stderr, "hiredis-baseline: --rate x --seconds sends nothing\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    snprintf(B.channel, sizeof B.channel, "asgispecific.bench%d", (int)getpid());
    B.to_subscribe = 1 + (B.workload == W_SCALE ? B.extra_channels : 0);
    if (B.workload == W_PINGPONG) B.cap_samples = B.count;
    if (B.workload == W_LATENCY) B.cap_samples = latency_total();
    if (B.cap_samples) {
        B.samples = calloc(B.cap_samples, sizeof *B.samples);
        if (!B.samples) return 1;
    }
    if (B.workload == W_FANOUT) {
        B.mem = calloc(B.members, sizeof *B.mem);
        if (!B.mem) return 1;
    }

    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    B.base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!B.base) {
        fprintf(stderr, "hiredis-baseline: event_base_new failed\n");
        return 1;
    }

    B.pub = redisAsyncConnect(B.host, B.port);
    B.sub = redisAsyncConnect(B.host, B.port);
    if (B.pub == NULL || B.sub == NULL || B.pub->err || B.sub->err) {
        /* a context returned with err set gets no callbacks: ours to free */
        snprintf(B.error, sizeof B.error, "connect failed: %s",
                 B.pub && B.pub->err ? B.pub->errstr : B.sub && B.sub->err ? B.sub->errstr : "out of memory");
        B.failed = 1;
        if (B.pub) redisAsyncFree(B.pub);
        if (B.sub) redisAsyncFree(B.sub);
        B.pub = B.sub = NULL;
        print_result();
        event_base_free(B.base);
        return 1;
    }
    redisLibeventAttach(B.pub, B.base);
    redisLibeventAttach(B.sub, B.base);
    redisAsyncSetConnectCallback(B.pub, on_connect);
    redisAsyncSetConnectCallback(B.sub, on_connect);
    redisAsyncSetDisconnectCallback(B.pub, on_disconnect);
    redisAsyncSetDisconnectCallback(B.sub, on_disconnect);

    B.timeout_ev = evtimer_new(B.base, on_timeout, NULL);
    B.tick_ev = evtimer_new(B.base, on_tick, NULL);
    B.grace_ev = evtimer_new(B.base, on_grace, NULL);
    struct timeval tmo = {(time_t)B.timeout, (suseconds_t)((B.timeout - (double)(time_t)B.timeout) * 1e6)};
    evtimer_add(B.timeout_ev, &tmo);

    int consumer_running = 0;
    if (B.consumer_thread) {
        int err = consumer_start();
        if (err == 0) {
            consumer_running = 1;
        } else {
            B.failed = 1;
            snprintf(B.error, sizeof B.error, "could not start the consumer thread: %s", strerror(err));
        }
    }

    B.sub_start_ns = now_ns();
    if (!B.failed) subscribe_all(); /* queued; written once the connection is up */
    if (!B.failed) event_base_dispatch(B.base);
    if (consumer_running) consumer_stop();

    print_result();
    fflush(stdout);

    evtimer_del(B.timeout_ev);
    evtimer_del(B.tick_ev);
    evtimer_del(B.grace_ev);
    /* outside every callback now: freeing calls pending callbacks with NULL, then on_disconnect */
    if (B.pub) redisAsyncFree(B.pub);
    if (B.sub) redisAsyncFree(B.sub);
    event_free(B.timeout_ev);
    event_free(B.tick_ev);
    event_free(B.grace_ev);
    if (B.notify_ev) event_free(B.notify_ev);
    for (int i = 0; i < 2; i++)
        if (Q.notify[i] >= 0) close(Q.notify[i]);
    event_base_free(B.base);
    free(B.samples);
    free(B.mem);
    return B.failed ? 1 : 0;
}
