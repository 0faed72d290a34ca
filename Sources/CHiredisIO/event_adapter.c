// hiredis's event hooks on a libevent base: the glue between hiredis 0.14.1 async contexts and
// libevent that the layer uses instead of hiredis/adapters/libevent.h. It does the same job with
// fewer system calls per message:
//
// - Reads: hiredis's redisBufferRead takes at most 16 KiB per readiness event. A subscriber
//   receiving ~100-byte messages then needs one epoll_wait per ~150 messages, while the
//   publisher connection takes ~4,000 four-byte replies per read, so publishers race ahead and
//   the server buffers the subscriber's backlog until it hits its pub/sub output-buffer limit
//   and drops the subscriber, losing messages. Here one readiness reads until the socket is
//   empty, 64 KiB at a time, feeding hiredis's reader, and then runs redisProcessCallbacks,
//   which is exactly what redisAsyncHandleRead does after its own read. Draining matters:
//   PUBLISH replies complete sends long before the subscriber has read the messages, so a loop
//   pass that reads less than it lets publishers write lets publishers in the same process
//   outrun their own subscriber (see Benchmarks.md, Findings). The cap of CHR_IO_READ_ROUNDS
//   reads (16 MiB) only keeps timers and other connections alive when an outside publisher never
//   lets the socket drain.
// - The read event is persistent (EV_PERSIST) and stays registered: the stock adapter's one-shot
//   event is deleted and re-added around every read.
// - What one read() brought is fed to hiredis's reader in slices of CHR_IO_FEED_SLICE bytes, each
//   parsed before the next: after each reply, once 1 KiB is consumed, hiredis's reader moves the
//   unparsed rest of its buffer to the front (sdsrange), so a 64 KiB feed would move ~32 KiB per
//   ten messages.
// - Reply objects come from small per-thread free lists (reply_pool.c, chr_reply_functions)
//   instead of a calloc/malloc and a free for each: a received message is an array of three
//   strings, eight allocations in hiredis's default functions.
// - Writes: the stock adapter registers interest in writability for every command, which costs an
//   epoll_ctl, a trip through epoll_wait and another epoll_ctl before the bytes leave. Here a
//   command only queues its connection for one "flush" callback that libevent runs in the same
//   loop pass, after the callback that issued it: every command issued in one pass (a batch of
//   PUBLISHes, a reply that triggers the next command) goes out in one write(), with no epoll
//   round trip. Only when the socket is full (or still connecting) do we wait for writability.
//   A complete write keeps the output buffer's memory (see chr_write).
// - On a subscriber, "message" pushes skip hiredis's reader (message_fast_path.c, chr_scan;
//   resp_scanner.h finds the frames).
// - A TLS connection (tls.c) takes the same paths with SSL_read and SSL_write in place of read and
//   write; until its handshake is done, its events belong to tls.c and hiredis's hooks do nothing.
//
// Everything here runs on the event_base's thread, like every other hiredis and libevent call.

#include "hiredis_io_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/sds.h>

// MARK: Connections

static void chr_free_conn(chr_io_conn *conn) {
    chr_tls_free(conn);
    free(conn->partial);
    free(conn->refused_at);
    free(conn);
}

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
    if (conn->depth == 0) chr_free_conn(conn);
    return 0;
}

// MARK: hiredis's event hooks

static void chr_arm(struct event *event, int *armed) {
    if (*armed) return;
    if (event_add(event, NULL) == 0) *armed = 1;
}

static void chr_disarm(struct event *event, int *armed) {
    if (!*armed) return;
    event_del(event);
    *armed = 0;
}

void chr_io_conn_arm_read(chr_io_conn *conn) { chr_arm(conn->read_event, &conn->reading); }
void chr_io_conn_arm_write(chr_io_conn *conn) { chr_arm(conn->write_event, &conn->writing); }
void chr_io_conn_disarm_write(chr_io_conn *conn) { chr_disarm(conn->write_event, &conn->writing); }

/// A TLS connection before its handshake is done: its events follow what OpenSSL asks for (tls.c),
/// not hiredis (which queues its first commands then, and must not write them in plain text).
static int chr_tls_owns_events(const chr_io_conn *conn) {
    return conn->ssl != NULL && conn->tls_state != CHR_TLS_OPEN;
}

static void chr_add_read(void *privdata) {
    chr_io_conn *conn = privdata;
    if (chr_tls_owns_events(conn)) return;
    chr_arm(conn->read_event, &conn->reading);
}

static void chr_del_read(void *privdata) {
    chr_io_conn *conn = privdata;
    if (chr_tls_owns_events(conn)) return;
    chr_disarm(conn->read_event, &conn->reading);
}

static void chr_add_write(void *privdata) {
    chr_io_conn *conn = privdata;
    // tls.c flushes what was queued once the handshake is done.
    if (chr_tls_owns_events(conn)) return;
    // Still connecting (writability is how a non-blocking connect completes), or the socket could
    // not take everything: wait for writability.
    if (conn->flushing || !(conn->ac->c.flags & REDIS_CONNECTED)) {
        chr_arm(conn->write_event, &conn->writing);
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
    if (chr_tls_owns_events(conn)) return;
    chr_disarm(conn->write_event, &conn->writing);
}

static void chr_cleanup(void *privdata) {
    chr_io_conn *conn = privdata;
    chr_unqueue(conn);
    chr_tls_cleanup(conn);
    event_free(conn->read_event);   // deletes a pending event first
    event_free(conn->write_event);
    conn->read_event = conn->write_event = NULL;
    conn->ac = NULL;
    if (conn->depth > 0) conn->freed = 1;
    else chr_free_conn(conn);
}

// MARK: libevent callbacks

/// Writes the output buffer, and waits for writability only if something is left. A connect in
/// progress and write errors take hiredis's own path (redisAsyncHandleWrite), which completes the
/// connect or disconnects.
void chr_consume_output(redisContext *c, size_t written) {
    // redisBufferWrite's success path, except that an emptied output buffer keeps its memory
    // (up to CHR_IO_KEEP_OUTPUT): hiredis frees it after every complete write, and the next
    // batch of commands would grow it again by doubling, a dozen reallocs and copies per batch.
    if (written == 0) return;
    if (written == sdslen(c->obuf) && sdsalloc(c->obuf) > CHR_IO_KEEP_OUTPUT) {
        sdsfree(c->obuf);
        c->obuf = sdsempty();
    } else {
        sdsrange(c->obuf, (int)written, -1);
    }
}

static void chr_write(chr_io_conn *conn) {
    redisContext *c = &conn->ac->c;
    if (conn->ssl != NULL) {
        // Never hiredis's path below: it would write the commands in plain text.
        chr_enter(conn);
        chr_tls_on_writable(conn);
        chr_leave(conn);
        return;
    }
    if ((c->flags & REDIS_CONNECTED) && c->err == 0) {
        size_t length = sdslen(c->obuf);
        ssize_t written = length > 0 ? write(c->fd, c->obuf, length) : 0;
        if (written >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (written > 0) chr_consume_output(c, (size_t)written);
            if (sdslen(c->obuf) > 0) chr_arm(conn->write_event, &conn->writing);
            else chr_disarm(conn->write_event, &conn->writing);
            chr_arm(conn->read_event, &conn->reading);  // as hiredis: reads after writes
            return;
        }
        // A write error: hiredis's own path below writes again, sees it, and disconnects.
    }
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
    loop->activity += 1;
    while ((conn = loop->pending) != NULL) {
        chr_unqueue(conn);
        chr_write(conn);
    }
}

static void chr_on_write(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what;
    chr_io_conn *conn = arg;
    conn->loop->activity += 1;
    chr_write(conn);
}

/// Hands bytes to hiredis's reader in slices of CHR_IO_FEED_SLICE, each parsed (and its
/// callbacks run) before the next. Stops when the connection goes. (message_fast_path.c feeds too.)
void chr_feed(chr_io_conn *conn, const char *bytes, size_t length) {
    redisAsyncContext *ac = conn->ac;
    for (size_t offset = 0; offset < length && !conn->freed; offset += CHR_IO_FEED_SLICE) {
        size_t slice = length - offset < CHR_IO_FEED_SLICE ? length - offset : CHR_IO_FEED_SLICE;
        // A feed error leaves the reader in its error state; redisProcessCallbacks reports it and
        // disconnects.
        (void)redisReaderFeed(ac->c.reader, bytes + offset, slice);
        redisProcessCallbacks(ac);
    }
}

void chr_read(chr_io_conn *conn) {
    redisAsyncContext *ac = conn->ac;
    char *buffer = conn->loop->buffer;
    if (conn->ssl != NULL) {
        // SSL_read returns one TLS record (16 KiB at most) per call, so a short read says nothing
        // about the socket: read until OpenSSL wants more, over as many bytes as the plain path.
        for (int round = 0; round < CHR_IO_READ_ROUNDS * 4 && !conn->freed; round++) {
            ssize_t count = chr_tls_read(conn, buffer, CHR_IO_READ_CHUNK);
            if (count <= 0) return;  // would block, or the connection is gone
            if (conn->on_message) chr_scan(conn, buffer, (size_t)count);
            else chr_feed(conn, buffer, (size_t)count);
        }
        // Stopped by the cap: bytes OpenSSL already holds would not wake the socket's event.
        if (!conn->freed && chr_tls_has_pending(conn)) event_active(conn->read_event, EV_READ, 1);
        return;
    }
    for (int round = 0; round < CHR_IO_READ_ROUNDS && !conn->freed; round++) {
        ssize_t count = read(ac->c.fd, buffer, CHR_IO_READ_CHUNK);
        if (count > 0) {
            if (conn->on_message) chr_scan(conn, buffer, (size_t)count);
            else chr_feed(conn, buffer, (size_t)count);
            if (count < CHR_IO_READ_CHUNK) break;
        } else if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            break;
        } else {
            // End of stream or an error: hiredis reads again, sees it, and disconnects the way it
            // always does (disconnect callback, pending callbacks with NULL replies).
            redisAsyncHandleRead(ac);
            break;
        }
    }
}

static void chr_on_read(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what;
    chr_io_conn *conn = arg;
    redisAsyncContext *ac = conn->ac;
    conn->loop->activity += 1;
    if (chr_tls_owns_events(conn)) {
        chr_enter(conn);
        chr_tls_on_readable_before_open(conn);
        chr_leave(conn);
        return;
    }
    if (!(ac->c.flags & REDIS_CONNECTED)) {
        // The connect's outcome: hiredis's own path. It may free the context (and conn).
        redisAsyncHandleRead(ac);
        return;
    }
    chr_enter(conn);
    // An SSL_write that wanted readability goes first: it may be what the server waits for.
    if (conn->tls_write_wants_read) chr_tls_on_writable(conn);
    if (!conn->freed) chr_read(conn);
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
    free(loop->scratch);
    free(loop);
    chr_io_release_reply_pool();  // called on the loop's thread as it ends: its free lists
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
    ac->c.reader->fn = chr_io_reply_functions();  // reply_pool.c
    // As the stock adapter: read for the server's first bytes, write for the connect's completion.
    chr_arm(conn->read_event, &conn->reading);
    chr_arm(conn->write_event, &conn->writing);
    return REDIS_OK;
}

uint64_t chr_io_activity(const chr_io_loop *loop) { return loop->activity; }
