#ifndef CHANNELS_REDIS_HIREDIS_IO_H
#define CHANNELS_REDIS_HIREDIS_IO_H

// Our own glue between hiredis's async contexts and a libevent base, in place of hiredis's
// header-only libevent adapter (hiredis/adapters/libevent.h). Why it exists: event_adapter.c;
// hiredis_io_internal.h maps the module's files. Every function runs on the thread that runs the
// event_base, except chr_io_scan_frame (any thread: it has no state).

// The libc headers first: event2/event-config.h defines _GNU_SOURCE (see CHiredis/shim.h).
#include <stdint.h>
#include <sys/types.h>
#include <sys/time.h>
#include <sys/select.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <hiredis/async.h>

/// Per event_base state: the "flush" event and the connections waiting for it, one read buffer.
typedef struct chr_io_loop chr_io_loop;

/// NULL when out of memory.
chr_io_loop *chr_io_loop_create(struct event_base *base);

/// Frees the loop state. Every context attached to it must have been freed before.
void chr_io_loop_free(chr_io_loop *loop);

/// How many I/O callbacks (reads, writes, flushes) the loop has run so far. Loop thread only.
uint64_t chr_io_activity(const chr_io_loop *loop);

/// A "message" push: channel and payload point into the read buffer, valid during the call.
typedef void chr_io_message_fn(redisAsyncContext *ac, const char *channel, size_t channel_length,
                               const char *payload, size_t payload_length);

/// From now on, complete "message" pushes on this (subscriber) context go to `fn` without passing
/// through hiredis's reader and subscription table; every other frame still goes to hiredis, in
/// order. NULL turns it off. Only for a context that sends nothing whose reply could look like a
/// message push (a subscriber: AUTH, SELECT, SUBSCRIBE, UNSUBSCRIBE).
void chr_io_deliver_messages(redisAsyncContext *ac, chr_io_message_fn *fn);

/// A subscribe (`subscribed` 1) or unsubscribe (0) confirmation of `channel` (pointing into the read
/// buffer, valid during the call).
typedef void chr_io_subscription_fn(redisAsyncContext *ac, int subscribed, const char *channel, size_t channel_length);

/// From now on, subscribe and unsubscribe confirmations on this (subscriber) context go to `fn`
/// straight from the read buffer, like messages with chr_io_deliver_messages (which must be on
/// too: this path is part of it). Send (UN)SUBSCRIBE only with chr_io_subscribe then: hiredis
/// knows nothing of these subscriptions (subscribe.c says why).
void chr_io_handle_subscriptions(redisAsyncContext *ac, chr_io_subscription_fn *fn);

/// Queues one SUBSCRIBE (`unsubscribe` 0) or UNSUBSCRIBE (1) of `count` channels, formatted here and
/// kept out of hiredis's subscription table: channel `i` is bytes [ends[i-1], ends[i]) of `names`
/// (ends[-1] = 0). REDIS_OK, or REDIS_ERR when the context is disconnecting or memory ran out.
int chr_io_subscribe(redisAsyncContext *ac, int unsubscribe, const void *names, const size_t *ends, size_t count);

// MARK: Sharded pub/sub (Redis Cluster)
//
// hiredis's async API knows only (p)subscribe pushes (every version), so a subscriber of a cluster
// primary sends SSUBSCRIBE and SUNSUBSCRIBE past hiredis (chr_io_raw_command: no callback is queued,
// so hiredis expects no reply), and the fast path takes every frame those commands and the server's
// sharded pub/sub produce before hiredis sees it: "smessage" pushes go to the context's on_message
// function like "message" pushes, "ssubscribe" and "sunsubscribe" pushes (confirmations, and the
// server's own when a slot moves away) and the error replies to SSUBSCRIBE (-MOVED, -CROSSSLOT) go to
// its on_shard_push function. An error frame is taken only while hiredis expects no reply of its own
// (its reply queue is empty): a refused AUTH still reaches hiredis and its callback.

/// What chr_io_classify_shard_frame found.
typedef enum chr_io_shard_frame_kind {
    /// Not a sharded pub/sub frame (hiredis gets it).
    CHR_IO_SHARD_OTHER = 0,
    /// `smessage`: channel and payload.
    CHR_IO_SHARD_MESSAGE = 1,
    /// `ssubscribe`: channel and count.
    CHR_IO_SHARD_SUBSCRIBE = 2,
    /// `sunsubscribe`: channel and count.
    CHR_IO_SHARD_UNSUBSCRIBE = 3,
    /// An error reply: its text (without the '-' and the CRLF) as the "channel".
    CHR_IO_SHARD_ERROR = 4,
} chr_io_shard_frame_kind;

/// A classified frame; offsets count from the frame's first byte.
typedef struct chr_io_shard_frame {
    chr_io_shard_frame_kind kind;
    size_t channel_offset, channel_length;
    size_t payload_offset, payload_length;
    long long count;
} chr_io_shard_frame;

/// Classifies the complete frame bytes[0, length) (a length chr_io_scan_frame reported). Always
/// writes `frame` (zeroed for CHR_IO_SHARD_OTHER); reads nothing at or past `length`.
void chr_io_classify_shard_frame(const char *bytes, size_t length, chr_io_shard_frame *frame);

/// An `ssubscribe` or `sunsubscribe` push, or an error reply hiredis did not expect (see above):
/// `kind` a chr_io_shard_frame_kind, `text` the channel (or the error's text), valid during the call.
typedef void chr_io_shard_push_fn(redisAsyncContext *ac, int kind, const char *text, size_t text_length, long long count);

/// From now on the sharded pub/sub frames of this (subscriber) context bypass hiredis as described
/// above: `smessage` to the function given to chr_io_deliver_messages (which must be set), the
/// others to `fn`. NULL turns it off.
void chr_io_deliver_shard_pushes(redisAsyncContext *ac, chr_io_shard_push_fn *fn);

/// Appends a command to the context's output buffer, formatted as hiredis would, with no callback:
/// hiredis expects no reply to it, so every reply it causes must be taken by the fast path
/// (SSUBSCRIBE and SUNSUBSCRIBE on a context with chr_io_deliver_shard_pushes). REDIS_OK, or
/// REDIS_ERR when the context is disconnecting or memory ran out.
int chr_io_raw_command(redisAsyncContext *ac, int argc, const char **argv, const size_t *lengths);

/// Attaches a new context to the loop (like redisLibeventAttach). REDIS_OK or REDIS_ERR.
int chr_io_attach(redisAsyncContext *ac, chr_io_loop *loop);

// MARK: TLS (tls.c)

/// An OpenSSL client context (SSL_CTX) and its verification settings, shared by every connection to
/// one endpoint. Made and freed on any thread; only its connections' calls are loop-thread only.
typedef struct chr_io_tls chr_io_tls;

/// A TLS client context: trust roots from `ca_file` (a PEM file) or, when NULL, the system's store;
/// a client certificate chain and its key (`key_file` NULL: the key is in `certificate_file`) for
/// mutual TLS, or neither; `verify_peer` 0 turns certificate verification off. NULL on failure,
/// with the reason in `error` (NUL-terminated, at most capacity - 1 bytes).
chr_io_tls *chr_io_tls_create(const char *ca_file, const char *certificate_file, const char *key_file,
                              int verify_peer, char *error, size_t capacity);

/// Frees the context. Connections made from it may still be open (OpenSSL counts references).
void chr_io_tls_free(chr_io_tls *tls);

/// Makes a just-attached context (chr_io_attach, before the loop runs it) a TLS connection: the
/// handshake runs on the loop when the TCP connect completes, with SNI `server_name` (unless it is
/// an IP address) and, when the context verifies and `check_hostname` is 1, the certificate checked
/// for that name or IP address. hiredis's connect callback runs once the handshake is done, or with
/// REDIS_ERR and the reason in errstr when it fails. REDIS_OK, or REDIS_ERR with the reason in `error`
/// (the context is then the caller's to free).
int chr_io_use_tls(redisAsyncContext *ac, chr_io_tls *tls, const char *server_name, int check_hostname,
                   char *error, size_t capacity);

/// 1 while the context's TLS handshake is in progress (the TCP connect is done, SSL_connect is not).
int chr_io_tls_handshaking(const redisAsyncContext *ac);

/// How many SSL objects connections have made and freed so far, process-wide (any thread): the
/// tests' leak check.
void chr_io_tls_counts(uint64_t *created, uint64_t *freed);

/// Queues one PUBLISH of `channel` per payload, in order, formatted here (hiredis's own formatting
/// is an sdscatfmt per argument). Payload `i` is bytes [ends[i-1], ends[i]) of `payloads`
/// (ends[-1] = 0). Only the last command's reply goes to `fn` with `privdata`; the replies before
/// it are checked here, and an error among them is counted for chr_io_take_rejected, so a run of
/// n PUBLISHes costs one callback into the caller instead of n.
/// Returns how many were queued: all of them, or 0 when the context is disconnecting or memory
/// ran out (hiredis queues every command once its flags allow it).
/// With `sharded` 1 the commands are SPUBLISH (Redis Cluster's sharded pub/sub) instead of PUBLISH.
/// With `asking` 1 (after a cluster -ASK redirect) each is preceded by ASKING, in the same output
/// buffer; ASKING's reply is consumed here.
size_t chr_io_publish(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata, int sharded, int asking,
                      const void *channel, size_t channel_length, const void *payloads, const size_t *ends, size_t count);

/// How many replies to the PUBLISHes before a run's last one were errors since the last call
/// (call it in every last-of-run callback), and the text of the last such error, copied into
/// `text` (at most capacity - 1 bytes and a NUL). Resets both.
size_t chr_io_take_rejected(redisAsyncContext *ac, char *text, size_t capacity);

/// SPUBLISH runs only (call it in every last-of-run callback of one): the positions in their run
/// (0-based) of the refused SPUBLISHes before the run's last, at most `capacity` of them into
/// `positions`, and in `other` how many of those refusals were not cluster redirects (`MOVED `,
/// `ASK `) or have no position recorded. Returns how many positions it wrote. Resets them.
size_t chr_io_take_refused(redisAsyncContext *ac, size_t *positions, size_t capacity, size_t *other);

/// The sum of the receiver counts Redis replied to the PUBLISHes before a run's last one since the
/// last call (call it in every last-of-run callback, with chr_io_take_rejected). Resets it.
long long chr_io_take_receivers(redisAsyncContext *ac);

/// The reply-object functions chr_io_attach installs on every context's reader (pooled redisReply
/// objects with hiredis's layout). Exposed for tests; loop thread only, like everything here.
redisReplyObjectFunctions *chr_io_reply_functions(void);

/// Frees the calling thread's pooled reply objects (chr_io_loop_free does this on the loop thread).
void chr_io_release_reply_pool(void);

/// Bytes one read() takes at most, and reads per readiness before other events get their turn:
/// 256 x 64 KiB = 16 MiB, half of Redis's default hard output-buffer limit for pub/sub clients.
/// A readiness reads until the socket is empty unless that much is waiting (see event_adapter.c).
enum { CHR_IO_READ_CHUNK = 64 * 1024, CHR_IO_READ_ROUNDS = 256 };

// MARK: The RESP2 frame scanner, for tests and fuzzing
//
// The function the subscriber's fast path (chr_io_deliver_messages) runs on every frame the server
// sends, exposed so tests and fuzzers can check it without a server (resp_scanner.h). The Swift
// code of the layer does not call it.

/// What chr_io_scan_frame found at the start of a buffer.
typedef enum chr_io_scan_status {
    /// Not RESP2 as the scanner reads it: the fast path hands these bytes and everything after
    /// them to hiredis, which parses them or reports the protocol error and disconnects.
    CHR_IO_SCAN_MALFORMED = -1,
    /// A valid start of a frame (or no bytes): wait for more.
    CHR_IO_SCAN_INCOMPLETE = 0,
    /// A whole frame: chr_io_frame says how long, and whether it is a "message" push.
    CHR_IO_SCAN_COMPLETE = 1,
} chr_io_scan_status;

/// A complete frame. Offsets count from the start of the buffer given to chr_io_scan_frame.
typedef struct chr_io_frame {
    /// The frame's length in bytes (0 unless complete).
    size_t length;
    /// 1 for a "message" push: exactly `*3`, the bulk string `message`, then two bulk strings.
    int is_message;
    /// A message push's channel and payload (0 otherwise).
    size_t channel_offset, channel_length;
    size_t payload_offset, payload_length;
} chr_io_frame;

/// Scans the frame at the start of bytes[0, length): its status, and for a complete frame its
/// length and kind in `frame` (always written; zeroed unless complete). Reads no byte at or past
/// `length`; `bytes` may be NULL when `length` is 0.
chr_io_scan_status chr_io_scan_frame(const char *bytes, size_t length, chr_io_frame *frame);

#endif
