#ifndef CHANNELS_REDIS_HIREDIS_IO_INTERNAL_H
#define CHANNELS_REDIS_HIREDIS_IO_INTERNAL_H

// Private to CHiredisIO: what its .c files share. Not in include/, so Swift never sees it; the
// module's API is include/hiredis_io.h.
//
// The glue between hiredis 0.14.1 async contexts and libevent that the layer uses instead of
// hiredis/adapters/libevent.h, in one file per concern:
//
//   event_adapter.c      hiredis's event hooks on libevent: reads until the socket is empty, one
//                        write per loop pass ("flush"), the connection's lifetime (chr_io_attach)
//   message_fast_path.c  "message" pushes on a subscriber go to a callback without hiredis's
//                        reader (chr_io_deliver_messages); every other frame goes to hiredis
//   resp_scanner.h       finds where a RESP2 frame ends in untrusted server bytes, and whether it
//                        is a "message" push; no hiredis, no state (static inline, for the fast
//                        path; resp_scanner.c exports it as chr_io_scan_frame for the tests in
//                        Tests/ChannelsRedisTests/RESPScannerTests.swift and the fuzzer in
//                        Tests/Fuzz/RESPScanner)
//   reply_pool.c         redisReply objects from per-thread free lists (chr_io_reply_functions)
//   publish.c            PUBLISH (or SPUBLISH) formatted by us, one callback per run (chr_io_publish);
//                        commands sent past hiredis's reply queue (chr_io_raw_command)
//   subscribe.c          a subscriber's (UN)SUBSCRIBEs formatted by us and their confirmations
//                        taken from the read buffer, out of hiredis's subscription dict
//                        (chr_io_subscribe, chr_io_handle_subscriptions)
//   tls.c                TLS with OpenSSL over the socket the glue already reads and writes: the
//                        handshake on the loop before hiredis sees the connect, SSL_read and
//                        SSL_write in place of read and write (chr_io_tls_*, chr_io_use_tls)
//
// Everything here runs on the event_base's thread, like every other hiredis and libevent call.

#include "hiredis_io.h"

#include <hiredis/hiredis.h>

// MARK: hiredis version
//
// The glue reads hiredis 0.14's internals, which 1.x renamed or changed; a different hiredis must
// fail here, at compile time, not corrupt memory at run time. What is read, and where:
//
// - redisProcessCallbacks, exported by libhiredis 0.14.1 (async.c) but in no header (declared
//   below): chr_feed (event_adapter.c) parses what we fed and runs the callbacks with it.
// - redisReader's fields: err, pos, len, ridx and rstack[0].type (message_fast_path.c,
//   chr_reader_between_frames, to know that the reader holds no part of a frame), and fn
//   (chr_io_attach installs our reply functions).
// - The reader's behaviour: redisReaderGetReply leaves a fresh top-level task of type -1 when it
//   runs out of bytes (chr_reader_between_frames), and moves its buffer's unparsed rest to the
//   front after each reply once 1 KiB is consumed (why chr_feed feeds CHR_IO_FEED_SLICE bytes at a
//   time).
// - redisContext's obuf as an sds, through sds.h's sdslen, sdsalloc, sdsrange, sdsfree and
//   sdsempty (1.x renamed sds to hisds): chr_write (event_adapter.c) writes it and trims it itself.
// - redisAsyncContext's replies list (head): chr_scan (message_fast_path.c) takes an error frame for
//   sharded pub/sub only while hiredis expects no reply.
// - redisContext's flags REDIS_CONNECTED, REDIS_DISCONNECTING and REDIS_FREEING, and err and fd:
//   chr_write, chr_add_write and chr_on_read (event_adapter.c), chr_io_publish (publish.c),
//   chr_io_subscribe (subscribe.c), which also appends to obuf with sdscatlen and sets
//   REDIS_SUBSCRIBED as __redisAsyncCommand does for a SUBSCRIBE.
// - redisAsyncContext's ev hooks and data (0.14's set: addRead, delRead, addWrite, delWrite,
//   cleanup; 1.x adds scheduleTimer): chr_io_attach; ev.data is our chr_io_conn everywhere.
// - For TLS (tls.c): what __redisAsyncHandleConnect does on success, done by us once the handshake
//   is done (set REDIS_CONNECTED in redisContext's flags, call redisAsyncContext's onConnect);
//   hiredis's failed-connect path (c->err, c->errstr as a char[128], ac->err and ac->errstr, then
//   onConnect with REDIS_ERR and redisAsyncFree); c->fd set to -1 around redisAsyncHandleRead so
//   that its read() fails, and redisFree closing only fds > 0; chr_cleanup (ev.cleanup) running
//   before the disconnect callback, so errstr can be rewritten there; c->tcp.host.
// - redisReplyObjectFunctions and redisReadTask (0.14's layout: five functions, createArray taking
//   an int; 1.x inserts createDouble and createBool before freeObject and takes a size_t), and
//   redisReply's fields: reply_pool.c builds replies positionally; chr_on_publish_reply
//   (publish.c) reads them.
#if !defined(HIREDIS_MAJOR) || !defined(HIREDIS_MINOR) || HIREDIS_MAJOR != 0 || HIREDIS_MINOR != 14
#error "CHiredisIO needs hiredis 0.14.x (Debian bookworm's libhiredis-dev 0.14.1): it reads hiredis internals that other versions changed (redisProcessCallbacks, redisReader's rstack/ridx/pos/len, redisContext's obuf as an sds, the 0.14 layout of redisReplyObjectFunctions and of the ev hooks). See Sources/CHiredisIO/hiredis_io_internal.h for where each is used."
#endif

// Exported by libhiredis 0.14.1 (async.c) but missing from its headers: parses the replies in the
// context's reader buffer and runs their callbacks; disconnects on a protocol error.
// redisAsyncHandleRead is "redisBufferRead, then redisProcessCallbacks".
void redisProcessCallbacks(redisAsyncContext *ac);

// Functions shared between this module's files are hidden: they are not API.
#define CHR_INTERNAL __attribute__((visibility("hidden")))

typedef struct chr_io_conn chr_io_conn;

/// Where a TLS connection is (chr_io_conn.tls_state; tls.c).
enum {
    CHR_TLS_NONE = 0,        // plain TCP or a Unix socket: no `ssl`
    CHR_TLS_CONNECTING,      // the TCP connect is in progress
    CHR_TLS_HANDSHAKING,     // SSL_connect has started; hiredis does not know the socket is connected
    CHR_TLS_OPEN,            // handshake done: REDIS_CONNECTED is set, bytes go through SSL_read/SSL_write
};

struct chr_io_loop {
    struct event_base *base;
    /// Never added; made active (event_active) when the first connection queues for a flush.
    struct event *flush;
    /// Connections with commands in their output buffer, waiting for the flush.
    chr_io_conn *pending;
    /// chr_io_publish formats each command here, chr_io_subscribe each (UN)SUBSCRIBE.
    char *scratch;
    size_t scratch_capacity;
    /// Callbacks run (reads, writes, flushes): lets the loop see whether a poll found work.
    uint64_t activity;
    char buffer[CHR_IO_READ_CHUNK];
};

enum { CHR_IO_FEED_SLICE = 2048, CHR_IO_KEEP_OUTPUT = 256 * 1024 };

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
    size_t rejected;            // error replies chr_on_publish_reply saw (chr_io_take_rejected)
    char rejection[128];        // the text of the last of them
    size_t *refused_at;         // the run positions of those errors, in order (chr_io_take_refused)
    size_t refused_at_count, refused_at_capacity;
    size_t refused_other;       // how many of those errors were not cluster redirects (MOVED, ASK)
    long long receivers;        // integer replies chr_on_publish_reply saw, summed (chr_io_take_receivers)
    chr_io_message_fn *on_message;  // set: "message" pushes bypass hiredis (chr_io_deliver_messages)
    chr_io_subscription_fn *on_subscription;  // set: confirmations bypass hiredis (chr_io_handle_subscriptions)
    chr_io_shard_push_fn *on_shard_push;  // set: sharded pub/sub frames bypass hiredis (chr_io_deliver_shard_pushes)
    char *partial;              // with on_message: the start of a frame that is not complete yet
    size_t partial_length, partial_capacity;
    struct ssl_st *ssl;         // TLS (tls.c): NULL for plain TCP and Unix sockets
    int tls_state;              // CHR_TLS_*
    int tls_write_wants_read;   // the last SSL_write wanted readability: write again when readable
    int tls_read_wants_write;   // the last SSL_read wanted writability: read again when writable
    char tls_error[128];        // why TLS failed, copied into hiredis's errstr (same size) by chr_cleanup
};

/// Hands bytes to hiredis's reader in slices of CHR_IO_FEED_SLICE, each parsed (and its
/// callbacks run) before the next. Stops when the connection goes. (event_adapter.c)
CHR_INTERNAL void chr_feed(chr_io_conn *conn, const char *bytes, size_t length);

/// Delivers what one read brought (after any partial frame from the reads before), frame by frame:
/// the read path of a connection with on_message set. (message_fast_path.c)
CHR_INTERNAL void chr_scan(chr_io_conn *conn, const char *read_bytes, size_t read_length);

/// Whether the complete frame bytes[0, length) is a subscribe or unsubscribe confirmation: 1 (with
/// `subscribed` 1 or 0 and the channel set; a NULL channel for the nil one of an UNSUBSCRIBE with
/// nothing subscribed), else 0. (subscribe.c)
CHR_INTERNAL int chr_subscription_frame(const char *bytes, size_t length, int *subscribed, const char **channel,
                                        size_t *channel_length);

/// Adds or deletes a connection's events (event_adapter.c), for tls.c, which drives them itself
/// during the handshake.
CHR_INTERNAL void chr_io_conn_arm_read(chr_io_conn *conn);
CHR_INTERNAL void chr_io_conn_arm_write(chr_io_conn *conn);
CHR_INTERNAL void chr_io_conn_disarm_write(chr_io_conn *conn);

/// Drops the first `written` bytes of the output buffer; a buffer emptied keeps its memory up to
/// CHR_IO_KEEP_OUTPUT (see chr_write). (event_adapter.c)
CHR_INTERNAL void chr_consume_output(redisContext *c, size_t written);

/// Reads until the socket is empty (or CHR_IO_READ_ROUNDS), feeding hiredis or the fast path:
/// the read path of an open connection, plain or TLS. Called between chr_enter and chr_leave.
/// (event_adapter.c)
CHR_INTERNAL void chr_read(chr_io_conn *conn);

/// A TLS connection's writability (the connect, the handshake, or SSL_write of the output
/// buffer), and its readability before the handshake is done. Called between chr_enter and
/// chr_leave. (tls.c)
CHR_INTERNAL void chr_tls_on_writable(chr_io_conn *conn);
CHR_INTERNAL void chr_tls_on_readable_before_open(chr_io_conn *conn);

/// SSL_read into `buffer`: the byte count, 0 when it would block, -1 when the connection ended
/// (hiredis has then been told and the context may be gone). (tls.c)
CHR_INTERNAL ssize_t chr_tls_read(chr_io_conn *conn, char *buffer, size_t capacity);

/// Whether OpenSSL holds bytes already read from the socket, which no readiness will announce. (tls.c)
CHR_INTERNAL int chr_tls_has_pending(chr_io_conn *conn);

/// A best-effort close_notify when our side closes an open TLS connection, then the SSL's
/// error text into hiredis's errstr (chr_cleanup). (tls.c)
CHR_INTERNAL void chr_tls_cleanup(chr_io_conn *conn);

/// Frees the connection's SSL (chr_free_conn). (tls.c)
CHR_INTERNAL void chr_tls_free(chr_io_conn *conn);

/// Writes `value` in decimal at `out` (at least 20 bytes); returns the number of digits. The
/// commands the glue formats itself (publish.c, subscribe.c) write their lengths with it.
static inline size_t chr_decimal(char *out, size_t value) {
    char digits[20];
    size_t count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    for (size_t index = 0; index < count; index++) out[index] = digits[count - 1 - index];
    return count;
}

#endif
