#ifndef CHANNELS_REDIS_HIREDIS_IO_H
#define CHANNELS_REDIS_HIREDIS_IO_H

// Our own glue between hiredis's async contexts and a libevent base, in place of hiredis's
// header-only libevent adapter (hiredis/adapters/libevent.h). Why it exists: hiredis_io.c.
// Every function runs on the thread that runs the event_base.

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

/// Attaches a new context to the loop (like redisLibeventAttach). REDIS_OK or REDIS_ERR.
int chr_io_attach(redisAsyncContext *ac, chr_io_loop *loop);

/// Queues one PUBLISH of `channel` per payload, in order, formatted here (hiredis's own formatting
/// is an sdscatfmt per argument). Payload `i` is bytes [ends[i-1], ends[i]) of `payloads`
/// (ends[-1] = 0). Only the last command's reply goes to `fn` with `privdata`; the replies before
/// it are checked here, and an error among them is counted for chr_io_take_rejected, so a run of
/// n PUBLISHes costs one callback into the caller instead of n.
/// Returns how many were queued: all of them, or 0 when the context is disconnecting or memory
/// ran out (hiredis queues every command once its flags allow it).
size_t chr_io_publish(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata, const void *channel,
                      size_t channel_length, const void *payloads, const size_t *ends, size_t count);

/// How many replies to the PUBLISHes before a run's last one were errors since the last call
/// (call it in every last-of-run callback), and the text of the last such error, copied into
/// `text` (at most capacity - 1 bytes and a NUL). Resets both.
size_t chr_io_take_rejected(redisAsyncContext *ac, char *text, size_t capacity);

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
/// A readiness reads until the socket is empty unless that much is waiting (see hiredis_io.c).
enum { CHR_IO_READ_CHUNK = 64 * 1024, CHR_IO_READ_ROUNDS = 256 };

#endif
