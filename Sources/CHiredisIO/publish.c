// PUBLISH, formatted here: chr_io_publish queues one PUBLISH of a channel per payload with
// redisAsyncFormattedCommand. hiredis's own formatting (redisAsyncCommandArgv) is an sdscatfmt per
// argument; here the command's header and channel are written once per run into the loop's
// scratch buffer and only each payload's bulk string after them changes. Only the last command of
// a run gets the caller's callback: the replies before it are summed here (receivers) or counted
// (errors, with the last one's text and their positions in the run), so a run of n PUBLISHes
// costs one callback into Swift instead of n (chr_io_take_rejected, chr_io_take_receivers,
// chr_io_take_refused). With `asking` (a Redis Cluster -ASK redirect) each SPUBLISH is preceded
// by an ASKING in the same output buffer, so nothing can come between the two; ASKING's +OK goes
// to a callback of its own (chr_on_asking_reply) and is never taken for the SPUBLISH's reply.

#include "hiredis_io_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/sds.h>

/// The callback of every PUBLISH of a run but the last: an error reply is counted for the run's last
/// callback (chr_io_take_rejected), and so is the receiver count of an integer one
/// (chr_io_take_receivers). A NULL reply (the connection is going away) reaches the last callback too.
/// `privdata` is NULL, or (SPUBLISH runs) the command's position in its run plus one, an integer, not
/// a pointer: then an error's position is recorded too (chr_io_take_refused).
static void chr_on_publish_reply(redisAsyncContext *ac, void *object, void *privdata) {
    redisReply *reply = object;
    chr_io_conn *conn = ac->ev.data;
    if (reply == NULL || conn == NULL) return;
    if (reply->type == REDIS_REPLY_INTEGER) {
        conn->receivers += reply->integer;
        return;
    }
    if (reply->type != REDIS_REPLY_ERROR) return;
    conn->rejected += 1;
    size_t length = reply->len < sizeof(conn->rejection) - 1 ? reply->len : sizeof(conn->rejection) - 1;
    if (reply->str != NULL) memcpy(conn->rejection, reply->str, length);
    else length = 0;
    conn->rejection[length] = '\0';
    if (privdata == NULL) return;
    if (strncmp(conn->rejection, "MOVED ", 6) != 0 && strncmp(conn->rejection, "ASK ", 4) != 0) conn->refused_other += 1;
    if (conn->refused_at_count == conn->refused_at_capacity) {
        size_t capacity = conn->refused_at_capacity == 0 ? 16 : conn->refused_at_capacity * 2;
        size_t *grown = realloc(conn->refused_at, capacity * sizeof(*grown));
        // Out of memory: the position is lost, and counted as a refusal that is not a redirect, so the
        // run fails instead of retrying the wrong messages.
        if (grown == NULL) {
            conn->refused_other += 1;
            return;
        }
        conn->refused_at = grown;
        conn->refused_at_capacity = capacity;
    }
    conn->refused_at[conn->refused_at_count++] = (size_t)(uintptr_t)privdata - 1;
}

/// ASKING's reply (+OK): nothing to do. An error would show again as the SPUBLISH's own refusal.
static void chr_on_asking_reply(redisAsyncContext *ac, void *object, void *privdata) {
    (void)ac;
    (void)object;
    (void)privdata;
}

/// Appends `$<length>\r\n<bytes>\r\n` at `out`; returns the bytes written (at most length + 26).
static size_t chr_bulk(char *out, const void *bytes, size_t length) {
    size_t used = 0;
    out[used++] = '$';
    used += chr_decimal(out + used, length);
    out[used++] = '\r';
    out[used++] = '\n';
    if (length > 0) memcpy(out + used, bytes, length);
    used += length;
    out[used++] = '\r';
    out[used++] = '\n';
    return used;
}

size_t chr_io_publish(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata, int sharded, int asking,
                      const void *channel, size_t channel_length, const void *payloads, const size_t *ends, size_t count) {
    chr_io_conn *conn = ac->ev.data;
    // hiredis refuses commands only for these flags; past this check every command is queued.
    if (conn == NULL || count == 0 || (ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))) return 0;
    static const char plain[] = "*3\r\n$7\r\nPUBLISH\r\n";
    static const char spublish[] = "*3\r\n$8\r\nSPUBLISH\r\n";
    const char *header = sharded ? spublish : plain;
    size_t header_length = sharded ? sizeof(spublish) - 1 : sizeof(plain) - 1;
    size_t longest = 0;
    for (size_t index = 0; index < count; index++) {
        size_t length = ends[index] - (index == 0 ? 0 : ends[index - 1]);
        if (length > longest) longest = length;
    }
    size_t needed = header_length + (channel_length + 26) + (longest + 26);
    chr_io_loop *loop = conn->loop;
    if (needed > loop->scratch_capacity) {
        char *grown = realloc(loop->scratch, needed);
        if (grown == NULL) return 0;
        loop->scratch = grown;
        loop->scratch_capacity = needed;
    }
    char *command = loop->scratch;
    memcpy(command, header, header_length);
    size_t prefix = header_length + chr_bulk(command + header_length, channel, channel_length);
    const char *bytes = payloads;
    static const char asking_command[] = "*1\r\n$6\r\nASKING\r\n";
    size_t queued = 0;
    for (size_t index = 0; index < count; index++) {
        size_t start = index == 0 ? 0 : ends[index - 1];
        size_t length = prefix + chr_bulk(command + prefix, bytes + start, ends[index] - start);
        int last = index + 1 == count;
        if (asking && redisAsyncFormattedCommand(ac, chr_on_asking_reply, NULL, asking_command, sizeof(asking_command) - 1) != REDIS_OK)
            break;
        void *data = last ? privdata : sharded ? (void *)(uintptr_t)(index + 1) : NULL;
        if (redisAsyncFormattedCommand(ac, last ? fn : chr_on_publish_reply, data, command, length) != REDIS_OK) break;
        queued += 1;
    }
    return queued;
}

size_t chr_io_take_rejected(redisAsyncContext *ac, char *text, size_t capacity) {
    chr_io_conn *conn = ac->ev.data;
    if (conn == NULL) return 0;
    size_t rejected = conn->rejected;
    conn->rejected = 0;
    if (capacity > 0) {
        size_t length = strlen(conn->rejection);
        if (length > capacity - 1) length = capacity - 1;
        memcpy(text, conn->rejection, length);
        text[length] = '\0';
    }
    conn->rejection[0] = '\0';
    return rejected;
}

size_t chr_io_take_refused(redisAsyncContext *ac, size_t *positions, size_t capacity, size_t *other) {
    chr_io_conn *conn = ac->ev.data;
    *other = 0;
    if (conn == NULL) return 0;
    size_t count = conn->refused_at_count < capacity ? conn->refused_at_count : capacity;
    if (count > 0) memcpy(positions, conn->refused_at, count * sizeof(*positions));
    *other = conn->refused_other + (conn->refused_at_count - count);
    conn->refused_at_count = 0;
    conn->refused_other = 0;
    return count;
}

long long chr_io_take_receivers(redisAsyncContext *ac) {
    chr_io_conn *conn = ac->ev.data;
    if (conn == NULL) return 0;
    long long receivers = conn->receivers;
    conn->receivers = 0;
    return receivers;
}

int chr_io_raw_command(redisAsyncContext *ac, int argc, const char **argv, const size_t *lengths) {
    chr_io_conn *conn = ac->ev.data;
    redisContext *c = &ac->c;
    if (conn == NULL || argc <= 0 || (c->flags & (REDIS_DISCONNECTING | REDIS_FREEING))) return REDIS_ERR;
    sds command = NULL;
    if (redisFormatSdsCommandArgv(&command, argc, argv, lengths) < 0 || command == NULL) return REDIS_ERR;
    sds grown = sdscatsds(c->obuf, command);
    sdsfree(command);
    if (grown == NULL) return REDIS_ERR;
    c->obuf = grown;
    // What __redisAsyncCommand does after queueing a command's bytes: ask for a write (a flush in
    // this loop pass once connected; event_adapter.c, chr_add_write).
    if (ac->ev.addWrite) ac->ev.addWrite(ac->ev.data);
    return REDIS_OK;
}
