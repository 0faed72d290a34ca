/* wakeup.c: what one hand-off to a sleeping thread costs on this machine, the hop a ping-pong in
 * the layer's default configuration cannot avoid (the loop thread resuming a task on the global
 * executor, whose worker thread is asleep by then).
 *
 *   cc -O2 -pthread -o wakeup .ci/bench/wakeup.c && ./wakeup [ROUND_TRIPS] [SPIN_US]
 *
 * Two threads pass a token back and forth through a mutex and condition variable (futex waits:
 * each hand-off wakes a sleeping thread), ROUND_TRIPS times; prints one JSON line with the
 * median and p99 of a round trip (two wake-ups) in µs. With SPIN_US > 0 the waiter first polls
 * the token for that long before it sleeps (as the layer's loop thread does with replyPoll), so
 * hand-offs that come within it wake no one: the difference is the cost of the wake-ups. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static atomic_int turn;
static long rounds = 20000;
static long spin_ns;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void wait_for(int me) {
    if (spin_ns > 0) {
        uint64_t until = now_ns() + (uint64_t)spin_ns;
        while (now_ns() < until)
            if (atomic_load_explicit(&turn, memory_order_acquire) == me) return;
    }
    pthread_mutex_lock(&mu);
    while (atomic_load_explicit(&turn, memory_order_acquire) != me) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void hand_to(int other) {
    pthread_mutex_lock(&mu);
    atomic_store_explicit(&turn, other, memory_order_release);
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static void *echo(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        wait_for(1);
        hand_to(0);
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc > 1) rounds = atol(argv[1]);
    if (argc > 2) spin_ns = atol(argv[2]) * 1000;
    if (rounds <= 0) return 2;
    uint64_t *rtt = malloc(sizeof *rtt * (size_t)rounds);
    if (!rtt) return 1;
    pthread_t thread;
    pthread_create(&thread, NULL, echo, NULL);
    for (long i = 0; i < rounds; i++) {
        uint64_t start = now_ns();
        hand_to(1);
        wait_for(0);
        rtt[i] = now_ns() - start;
    }
    pthread_join(thread, NULL);
    qsort(rtt, (size_t)rounds, sizeof *rtt, cmp);
    printf("{\"round_trips\":%ld,\"spin_us\":%ld,\"rtt_p50_us\":%.2f,\"rtt_p99_us\":%.2f}\n", rounds, spin_ns / 1000,
           (double)rtt[rounds / 2] / 1e3, (double)rtt[rounds * 99 / 100] / 1e3);
    free(rtt);
    return 0;
}
