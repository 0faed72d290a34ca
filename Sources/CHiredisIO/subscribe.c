// The subscriber's subscriptions, kept out of hiredis: SUBSCRIBE and UNSUBSCRIBE are formatted here
// and appended to the output buffer (chr_io_subscribe), and their confirmations go to the
// connection's on_subscription callback straight from the read buffer (chr_subscription_frame,
// called by chr_scan in message_fast_path.c), never through hiredis's reader.
//
// Why: for every channel of a SUBSCRIBE, hiredis 0.14.1 (__redisAsyncCommand) parses the command it
// has just formatted, copies the name into an sds and puts it with a copy of the callback into its
// subscription dict (four allocations that live as long as the subscription, ~140 bytes a channel,
// about a third of an idle channel's memory), and for every confirmation builds reply objects,
// copies the name into another sds to look the callback up, and compares the kind with
// strcasecmp. The layer needs none of it: it identifies every push by its own kind and channel
// (hiredis can hand a push to the wrong subscription callback), and its state machine knows what
// is subscribed.
//
// hiredis still owns the connection, AUTH's reply and everything else the server sends. The
// REDIS_SUBSCRIBED flag is set here as __redisAsyncCommand would for a SUBSCRIBE, so that hiredis
// treats a frame no command waits for as a push (its subscription dict is empty, so it drops it)
// instead of asserting. hiredis never sees an UNSUBSCRIBE confirmation either, so it never leaves
// subscribed mode. The subscriber sends nothing after its handshake but (UN)SUBSCRIBE.

#include "hiredis_io_internal.h"
#include "resp_scanner.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/sds.h>

/// Appends `<type><number>\r\n` at `out`; returns the bytes written (at most 23).
static size_t chr_subscribe_header(char *out, char type, size_t number) {
    out[0] = type;
    size_t used = 1 + chr_decimal(out + 1, number);
    out[used++] = '\r';
    out[used++] = '\n';
    return used;
}

int chr_io_subscribe(redisAsyncContext *ac, int unsubscribe, const void *names, const size_t *ends, size_t count) {
    chr_io_conn *conn = ac->ev.data;
    redisContext *c = &ac->c;
    // The flags for which hiredis refuses a command (__redisAsyncCommand).
    if (conn == NULL || count == 0 || (c->flags & (REDIS_DISCONNECTING | REDIS_FREEING))) return REDIS_ERR;
    const char *verb = unsubscribe ? "UNSUBSCRIBE" : "SUBSCRIBE";
    size_t verb_length = strlen(verb);
    size_t needed = 23 + 23 + verb_length + 2;
    for (size_t index = 0; index < count; index++) {
        needed += 23 + (ends[index] - (index == 0 ? 0 : ends[index - 1])) + 2;
    }
    chr_io_loop *loop = conn->loop;
    if (needed > loop->scratch_capacity) {
        char *grown = realloc(loop->scratch, needed);
        if (grown == NULL) return REDIS_ERR;
        loop->scratch = grown;
        loop->scratch_capacity = needed;
    }
    char *out = loop->scratch;
    size_t used = chr_subscribe_header(out, '*', count + 1);
    used += chr_subscribe_header(out + used, '$', verb_length);
    memcpy(out + used, verb, verb_length);
    used += verb_length;
    out[used++] = '\r';
    out[used++] = '\n';
    const char *bytes = names;
    for (size_t index = 0; index < count; index++) {
        size_t start = index == 0 ? 0 : ends[index - 1];
        size_t length = ends[index] - start;
        used += chr_subscribe_header(out + used, '$', length);
        if (length > 0) memcpy(out + used, bytes + start, length);
        used += length;
        out[used++] = '\r';
        out[used++] = '\n';
    }
    sds grown = sdscatlen(c->obuf, out, used);
    if (grown == NULL) return REDIS_ERR;
    c->obuf = grown;
    if (!unsubscribe) c->flags |= REDIS_SUBSCRIBED;
    // What hiredis does after queuing a command (_EL_ADD_WRITE): chr_add_write queues the flush.
    if (ac->ev.addWrite) ac->ev.addWrite(ac->ev.data);
    return REDIS_OK;
}

int chr_subscription_frame(const char *bytes, size_t length, int *subscribed, const char **channel,
                           size_t *channel_length) {
    static const char subscribe[] = "*3\r\n$9\r\nsubscribe\r\n";
    static const char unsubscribe[] = "*3\r\n$11\r\nunsubscribe\r\n";
    size_t position;
    if (length >= sizeof(subscribe) - 1 && memcmp(bytes, subscribe, sizeof(subscribe) - 1) == 0) {
        *subscribed = 1;
        position = sizeof(subscribe) - 1;
    } else if (length >= sizeof(unsubscribe) - 1 && memcmp(bytes, unsubscribe, sizeof(unsubscribe) - 1) == 0) {
        *subscribed = 0;
        position = sizeof(unsubscribe) - 1;
    } else {
        return 0;
    }
    // The frame is complete (chr_scan_frame said so): its channel is a bulk string, or nil.
    static const char nil[] = "$-1\r\n";
    if (length - position >= sizeof(nil) - 1 && memcmp(bytes + position, nil, sizeof(nil) - 1) == 0) {
        // UNSUBSCRIBE with nothing subscribed names no channel. The layer never sends one, and
        // hiredis would assert on it (its subscription lookup wants a string): ours, ignored.
        *channel = NULL;
        *channel_length = 0;
        return 1;
    }
    return chr_bulk_at(bytes, length, &position, channel, channel_length) == 1;
}

void chr_io_handle_subscriptions(redisAsyncContext *ac, chr_io_subscription_fn *fn) {
    chr_io_conn *conn = ac->ev.data;
    if (conn != NULL) conn->on_subscription = fn;
}
