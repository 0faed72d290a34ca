// The glue between hiredis 0.14.1 async contexts and libevent that the layer uses instead of
// hiredis/adapters/libevent.h. It does the same job with fewer system calls per message:
//
// - Reads: hiredis's redisBufferRead takes at most 16 KiB per readiness event. A subscriber
//   receiving ~100-byte messages then needed one epoll_wait per ~150 messages, while the
//   publisher connection took ~4,000 four-byte replies per read, so publishers raced ahead and
//   the server buffered the subscriber's backlog (found by the throughput benchmark: at 1 M
//   messages the server hit its pub/sub output-buffer limit and dropped the subscriber). Here one
//   readiness reads up to CHR_IO_READ_ROUNDS x 64 KiB, feeding hiredis's reader, and then runs
//   redisProcessCallbacks, which is exactly what redisAsyncHandleRead does after its own read.
// - The read event is persistent (EV_PERSIST) and stays registered: the stock adapter's one-shot
//   event is deleted and re-added around every read.
// - Writes: the stock adapter registers interest in writability for every command, which costs an
//   epoll_ctl, a trip through epoll_wait and another epoll_ctl before the bytes leave. Here a
//   command only queues its connection for one "flush" callback that libevent runs in the same
//   loop pass, after the callback that issued it: every command issued in one pass (a batch of
//   PUBLISHes, a reply that triggers the next command) goes out in one write(), with no epoll
//   round trip. Only when the socket is full (or still connecting) do we wait for writability.
//
// Everything here runs on the event_base's thread, like every other hiredis and libevent call.

#include "hiredis_io.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

// Exported by libhiredis 0.14.1 (async.c) but missing from its headers: parses the replies in the
// context's reader buffer and runs their callbacks; disconnects on a protocol error.
// redisAsyncHandleRead is "redisBufferRead, then redisProcessCallbacks".
void redisProcessCallbacks(redisAsyncContext *ac);

typedef struct chr_io_conn chr_io_conn;

struct chr_io_loop {
    struct event_base *base;
    /// Never added; made active (event_active) when the first connection queues for a flush.
    struct event *flush;
    /// Connections with commands in their output buffer, waiting for the flush.
    chr_io_conn *pending;
    char buffer[CHR_IO_READ_CHUNK];
};

struct chr_io_conn {
    redisAsyncContext *ac;
    chr_io_loop *loop;
    struct event *read_event;   // EV_READ | EV_PERSIST
    struct event *write_event;  // EV_WRITE | EV_PERSIST, added only while the socket must drain
    int reading;                // read_event is added
    int writing;                // write_event is added
    int queued;                 // in loop->pending
    int flushing;               // inside redisAsyncHandleWrite: an addWrite means "socket full"
    int depth;                  // our callbacks on the stack for this connection
    int freed;                  // hiredis cleaned up while depth > 0: free when depth is 0
    chr_io_conn *previous, *next;
};

static void chr_unqueue(chr_io_conn *conn) {
    if (!conn->queued) return;
    if (conn->previous) conn->previous->next = conn->next;
    else conn->loop->pending = conn->next;
    if (conn->next) conn->next->previous = conn->previous;
    conn->previous = conn->next = NULL;
    conn->queued = 0;
}

static void chr_enter(chr_io_conn *conn) { conn->depth += 1; }

/// Returns 0 if the connection is gone (and frees it if this was the outermost callback).
static int chr_leave(chr_io_conn *conn) {
    conn->depth -= 1;
    if (!conn->freed) return 1;
    if (conn->depth == 0) free(conn);
    return 0;
}

// MARK: hiredis's event hooks

static void chr_add_read(void *privdata) {
    chr_io_conn *conn = privdata;
    if (conn->reading) return;
    if (event_add(conn->read_event, NULL) == 0) conn->reading = 1;
}

static void chr_del_read(void *privdata) {
    chr_io_conn *conn = privdata;
    if (!conn->reading) return;
    event_del(conn->read_event);
    conn->reading = 0;
}

static void chr_arm_write(chr_io_conn *conn) {
    if (conn->writing) return;
    if (event_add(conn->write_event, NULL) == 0) conn->writing = 1;
}

static void chr_add_write(void *privdata) {
    chr_io_conn *conn = privdata;
    // Still connecting (writability is how a non-blocking connect completes), or the socket could
    // not take everything: wait for writability.
    if (conn->flushing || !(conn->ac->c.flags & REDIS_CONNECTED)) {
        chr_arm_write(conn);
        return;
    }
    if (conn->queued) return;
    chr_io_loop *loop = conn->loop;
    int first = loop->pending == NULL;
    conn->queued = 1;
    conn->previous = NULL;
    conn->next = loop->pending;
    if (loop->pending) loop->pending->previous = conn;
    loop->pending = conn;
    // Runs in this loop pass, after the callbacks already active (libevent appends to the queue).
    if (first) event_active(loop->flush, EV_WRITE, 1);
}

static void chr_del_write(void *privdata) {
    chr_io_conn *conn = privdata;
    if (!conn->writing) return;
    event_del(conn->write_event);
    conn->writing = 0;
}

static void chr_cleanup(void *privdata) {
    chr_io_conn *conn = privdata;
    chr_unqueue(conn);
    event_free(conn->read_event);   // deletes a pending event first
    event_free(conn->write_event);
    conn->read_event = conn->write_event = NULL;
    conn->ac = NULL;
    if (conn->depth > 0) conn->freed = 1;
    else free(conn);
}

// MARK: libevent callbacks

/// Writes the output buffer; hiredis calls addWrite again if the socket is full, delWrite if done.
static void chr_write(chr_io_conn *conn) {
    chr_enter(conn);
    conn->flushing = 1;
    redisAsyncHandleWrite(conn->ac);
    conn->flushing = 0;  // still allocated: chr_leave frees
    chr_leave(conn);
}

static void chr_on_flush(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what;
    chr_io_loop *loop = arg;
    chr_io_conn *conn;
    while ((conn = loop->pending) != NULL) {
        chr_unqueue(conn);
        chr_write(conn);
    }
}

static void chr_on_write(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what;
    chr_write(arg);
}

static void chr_on_read(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    chr_io_conn *conn = arg;
    redisAsyncContext *ac = conn->ac;
    if (!(ac->c.flags & REDIS_CONNECTED)) {
        // The connect's outcome: hiredis's own path. It may free the context (and conn).
        redisAsyncHandleRead(ac);
        return;
    }
    chr_enter(conn);
    char *buffer = conn->loop->buffer;
    for (int round = 0; round < CHR_IO_READ_ROUNDS; round++) {
        ssize_t count = read(fd, buffer, CHR_IO_READ_CHUNK);
        if (count > 0) {
            // A feed error leaves the reader in its error state; redisProcessCallbacks reports it
            // and disconnects.
            (void)redisReaderFeed(ac->c.reader, buffer, (size_t)count);
            redisProcessCallbacks(ac);
            if (conn->freed || count < CHR_IO_READ_CHUNK) break;
        } else if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            break;
        } else {
            // End of stream or an error: hiredis reads again, sees it, and disconnects the way it
            // always does (disconnect callback, pending callbacks with NULL replies).
            redisAsyncHandleRead(ac);
            break;
        }
    }
    chr_leave(conn);
}

// MARK: Public

chr_io_loop *chr_io_loop_create(struct event_base *base) {
    chr_io_loop *loop = calloc(1, sizeof(*loop));
    if (loop == NULL) return NULL;
    loop->base = base;
    loop->flush = event_new(base, -1, 0, chr_on_flush, loop);
    if (loop->flush == NULL) {
        free(loop);
        return NULL;
    }
    return loop;
}

void chr_io_loop_free(chr_io_loop *loop) {
    if (loop == NULL) return;
    event_free(loop->flush);
    free(loop);
}

int chr_io_attach(redisAsyncContext *ac, chr_io_loop *loop) {
    if (ac->ev.data != NULL) return REDIS_ERR;
    chr_io_conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL) return REDIS_ERR;
    conn->ac = ac;
    conn->loop = loop;
    conn->read_event = event_new(loop->base, ac->c.fd, EV_READ | EV_PERSIST, chr_on_read, conn);
    conn->write_event = event_new(loop->base, ac->c.fd, EV_WRITE | EV_PERSIST, chr_on_write, conn);
    if (conn->read_event == NULL || conn->write_event == NULL) {
        if (conn->read_event) event_free(conn->read_event);
        if (conn->write_event) event_free(conn->write_event);
        free(conn);
        return REDIS_ERR;
    }
    ac->ev.addRead = chr_add_read;
    ac->ev.delRead = chr_del_read;
    ac->ev.addWrite = chr_add_write;
    ac->ev.delWrite = chr_del_write;
    ac->ev.cleanup = chr_cleanup;
    ac->ev.data = conn;
    // As the stock adapter: read for the server's first bytes, write for the connect's completion.
    chr_add_read(conn);
    chr_arm_write(conn);
    return REDIS_OK;
}
