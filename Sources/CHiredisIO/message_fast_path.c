// The subscriber's fast path: "message" pushes skip hiredis's reader (chr_io_deliver_messages), and
// on a cluster primary's subscriber so do the sharded pub/sub frames (chr_io_deliver_shard_pushes).
//
// On the subscriber connection nearly every frame is a "message" push. hiredis would parse it
// into three reply objects, copy the channel name into an sds to find the subscription's
// callback in a dict (strncasecmp on the kind, strtoll on the lengths on the way) and free it
// all again. The layer identifies pushes by their own kind and channel anyway (hiredis 0.14.1
// can hand a push to the wrong subscription callback), so here a complete "message" frame goes
// straight to the connection's on_message callback, pointing into the read buffer, and so do
// subscribe and unsubscribe confirmations to on_subscription once the connection handles its
// subscriptions itself (subscribe.c). Every other frame (replies, errors, confirmations otherwise)
// is fed to hiredis whole and in order, so its reply queue and subscription bookkeeping stay
// exactly as they would be without this path. A frame cut by the end of a read waits in
// conn->partial for the rest.
//
// Where a frame ends, and whether it is a message push, resp_scanner.h decides (chr_scan_frame);
// this file keeps the bytes between reads and hands frames to the callback or to hiredis. Tested
// through a proxy that cuts messages anywhere on the network (LayerTests.swift,
// messagesCutAnywhereByTheNetworkArriveWholeAndInOrder) and sends a malformed frame (FaultTests.swift,
// aMalformedFrameFromTheServerCostsAReconnectNotACrash).

#include "hiredis_io_internal.h"
#include "resp_scanner.h"

#include <stdlib.h>
#include <string.h>

/// Keeps bytes[0, length) for the next read (they may point into conn->partial itself).
static int chr_keep_partial(chr_io_conn *conn, const char *bytes, size_t length) {
    if (length > conn->partial_capacity) {
        size_t capacity = conn->partial_capacity ? conn->partial_capacity : 4096;
        while (capacity < length) capacity *= 2;
        char *grown = malloc(capacity);
        if (grown == NULL) return 0;
        memcpy(grown, bytes, length);
        free(conn->partial);
        conn->partial = grown;
        conn->partial_capacity = capacity;
    } else if (bytes != conn->partial) {
        // (From the front of partial itself when a frame still lacks bytes: nothing to move.)
        memmove(conn->partial, bytes, length);
    }
    conn->partial_length = length;
    return 1;
}

/// Whether hiredis's reader holds no part of a frame: every byte fed to it was parsed, and its
/// task stack is empty or holds only the fresh top-level task redisReaderGetReply sets up when it
/// finds no more bytes (type -1: not even the type byte was read).
static int chr_reader_between_frames(const redisReader *reader) {
    if (reader->err || reader->pos < reader->len) return 0;
    return reader->ridx == -1 || (reader->ridx == 0 && reader->rstack[0].type == -1);
}

/// Sharded pub/sub (hiredis_io.h): hands the complete frame to on_message or on_shard_push if it is
/// one of ours; 0 when hiredis must have it. An error frame is ours only while hiredis's reply queue
/// is empty: then hiredis would take it for a spontaneous error and disconnect, and only our
/// SSUBSCRIBE and SUNSUBSCRIBE (sent with chr_io_raw_command) can have caused it.
static int chr_take_shard_frame(chr_io_conn *conn, const char *bytes, size_t length) {
    chr_io_shard_frame shard;
    chr_shard_frame(bytes, length, &shard);
    switch (shard.kind) {
    case CHR_IO_SHARD_OTHER:
        return 0;
    case CHR_IO_SHARD_MESSAGE:
        conn->on_message(conn->ac, bytes + shard.channel_offset, shard.channel_length, bytes + shard.payload_offset,
                         shard.payload_length);
        return 1;
    case CHR_IO_SHARD_ERROR:
        if (conn->ac->replies.head != NULL) return 0;
        break;
    case CHR_IO_SHARD_SUBSCRIBE:
    case CHR_IO_SHARD_UNSUBSCRIBE:
        break;
    }
    conn->on_shard_push(conn->ac, (int)shard.kind, bytes + shard.channel_offset, shard.channel_length, shard.count);
    return 1;
}

void chr_scan(chr_io_conn *conn, const char *read_bytes, size_t read_length) {
    const char *bytes = read_bytes;
    size_t length = read_length;
    if (conn->partial_length > 0) {
        size_t total = conn->partial_length + read_length;
        if (total > conn->partial_capacity) {
            size_t capacity = conn->partial_capacity;
            while (capacity < total) capacity *= 2;
            char *grown = realloc(conn->partial, capacity);
            if (grown == NULL) {
                // Out of memory: let hiredis have everything, in order (it buffers the same bytes).
                chr_feed(conn, conn->partial, conn->partial_length);
                conn->partial_length = 0;
                if (!conn->freed) chr_feed(conn, read_bytes, read_length);
                return;
            }
            conn->partial = grown;
            conn->partial_capacity = capacity;
        }
        memcpy(conn->partial + conn->partial_length, read_bytes, read_length);
        bytes = conn->partial;
        length = total;
    }
    redisReader *reader = conn->ac->c.reader;
    size_t offset = 0;
    while (offset < length && !conn->freed) {
        const char *rest = bytes + offset;
        size_t available = length - offset;
        if (!chr_reader_between_frames(reader)) {
            // hiredis holds part of a frame (only after running out of memory above): it keeps
            // everything from here on.
            chr_feed(conn, rest, available);
            offset = length;
            break;
        }
        chr_io_frame frame;
        chr_io_scan_status status = chr_scan_frame(rest, available, &frame);
        if (status == CHR_IO_SCAN_INCOMPLETE) break;  // wait for the rest
        if (status == CHR_IO_SCAN_MALFORMED) {
            // Malformed: hiredis reports the protocol error and disconnects (or parses what only
            // the scanner refuses, see resp_scanner.h).
            chr_feed(conn, rest, available);
            offset = length;
            break;
        }
        int subscribed;
        const char *channel;
        size_t channel_length;
        if (frame.is_message) {
            conn->on_message(conn->ac, rest + frame.channel_offset, frame.channel_length, rest + frame.payload_offset,
                             frame.payload_length);
        } else if (conn->on_subscription != NULL &&
                   chr_subscription_frame(rest, frame.length, &subscribed, &channel, &channel_length)) {
            if (channel != NULL) conn->on_subscription(conn->ac, subscribed, channel, channel_length);
        } else if (conn->on_shard_push != NULL && chr_take_shard_frame(conn, rest, frame.length)) {
            // taken: smessage, ssubscribe, sunsubscribe or an error hiredis expects no reply for
        } else {
            chr_feed(conn, rest, frame.length);
        }
        offset += frame.length;
    }
    if (conn->freed) return;
    size_t left = length - offset;
    if (left == 0) {
        conn->partial_length = 0;
        if (conn->partial_capacity > CHR_IO_READ_CHUNK) {
            // A large frame passed: give its memory back, as hiredis's reader does past 16 KiB.
            free(conn->partial);
            conn->partial = NULL;
            conn->partial_capacity = 0;
        }
    } else if (!chr_keep_partial(conn, bytes + offset, left)) {
        // Out of memory: hiredis takes the rest (and everything after it, see above).
        conn->partial_length = 0;
        chr_feed(conn, bytes + offset, left);
    }
}

void chr_io_deliver_messages(redisAsyncContext *ac, chr_io_message_fn *fn) {
    chr_io_conn *conn = ac->ev.data;
    if (conn != NULL) conn->on_message = fn;
}

void chr_io_deliver_shard_pushes(redisAsyncContext *ac, chr_io_shard_push_fn *fn) {
    chr_io_conn *conn = ac->ev.data;
    if (conn != NULL) conn->on_shard_push = fn;
}
