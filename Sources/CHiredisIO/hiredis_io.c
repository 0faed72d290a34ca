// The glue between hiredis 0.14.1 async contexts and libevent that the layer uses instead of
// hiredis/adapters/libevent.h. It does the same job with fewer system calls per message:
//
// - Reads: hiredis's redisBufferRead takes at most 16 KiB per readiness event. A subscriber
//   receiving ~100-byte messages then needed one epoll_wait per ~150 messages, while the
//   publisher connection took ~4,000 four-byte replies per read, so publishers raced ahead and
//   the server buffered the subscriber's backlog (found by the throughput benchmark: at 1 M
//   messages the server hit its pub/sub output-buffer limit and dropped the subscriber). Here one
//   readiness reads until the socket is empty, 64 KiB at a time, feeding hiredis's reader, and
//   then runs redisProcessCallbacks, which is exactly what redisAsyncHandleRead does after its
//   own read. Draining matters: PUBLISH replies complete sends long before the subscriber has
//   read the messages, so a loop pass that reads less than it lets publishers write lets
//   publishers in the same process outrun their own subscriber (a cap of 4 x 64 KiB lost
//   messages that way with batches of 4,096 and in a test). The cap of CHR_IO_READ_ROUNDS reads
//   (16 MiB) only keeps timers and other connections alive when an outside publisher never lets
//   the socket drain.
// - The read event is persistent (EV_PERSIST) and stays registered: the stock adapter's one-shot
//   event is deleted and re-added around every read.
// - What one read() brought is fed to hiredis's reader in slices of CHR_IO_FEED_SLICE bytes, each
//   parsed before the next: after each reply, once 1 KiB is consumed, hiredis's reader moves the
//   unparsed rest of its buffer to the front (sdsrange), so a 64 KiB feed would move ~32 KiB per
//   ten messages (it showed as the top symbol of the loop thread, memmove).
// - Reply objects come from small per-thread free lists (chr_reply_functions) instead of a
//   calloc/malloc and a free for each: a received message is an array of three strings, eight
//   allocations in hiredis's default functions.
// - Writes: the stock adapter registers interest in writability for every command, which costs an
//   epoll_ctl, a trip through epoll_wait and another epoll_ctl before the bytes leave. Here a
//   command only queues its connection for one "flush" callback that libevent runs in the same
//   loop pass, after the callback that issued it: every command issued in one pass (a batch of
//   PUBLISHes, a reply that triggers the next command) goes out in one write(), with no epoll
//   round trip. Only when the socket is full (or still connecting) do we wait for writability.
//   A complete write keeps the output buffer's memory (see chr_write).
// - On a subscriber, "message" pushes skip hiredis's reader (chr_io_deliver_messages, chr_scan).
//
// Everything here runs on the event_base's thread, like every other hiredis and libevent call.

#include "hiredis_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/sds.h>

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
    /// chr_io_publish formats each command here.
    char *scratch;
    size_t scratch_capacity;
    /// Callbacks run (reads, writes, flushes): lets the loop see whether a poll found work.
    uint64_t activity;
    char buffer[CHR_IO_READ_CHUNK];
};

enum { CHR_IO_FEED_SLICE = 2048, CHR_IO_KEEP_OUTPUT = 256 * 1024 };

// MARK: Reply objects
//
// The same objects hiredis's default functions (hiredis.c) build, with the same layout and
// ownership, so hiredis and our Swift code read them as usual; only where the memory comes from
// differs. Freed objects go to free lists of this thread (every reply of a context is created and
// freed on its loop thread), at most CHR_POOL_LIMIT of each kind; chr_io_loop_free empties them.

enum { CHR_SMALL_ARRAY = 4, CHR_SMALL_STRING = 128, CHR_POOL_LIMIT = 4096 };

typedef struct chr_free_list {
    void *first;  // each free item starts with the pointer to the next
    size_t count;
} chr_free_list;

static _Thread_local struct {
    chr_free_list replies;   // sizeof(redisReply)
    chr_free_list arrays;    // CHR_SMALL_ARRAY element pointers
    chr_free_list strings;   // CHR_SMALL_STRING bytes
} chr_pool;

static void *chr_take(chr_free_list *list, size_t size) {
    void *item = list->first;
    if (item == NULL) return malloc(size);
    list->first = *(void **)item;
    list->count -= 1;
    return item;
}

static void chr_give(chr_free_list *list, void *item) {
    if (list->count >= CHR_POOL_LIMIT) {
        free(item);
        return;
    }
    *(void **)item = list->first;
    list->first = item;
    list->count += 1;
}

static void chr_drain(chr_free_list *list) {
    while (list->first != NULL) {
        void *item = list->first;
        list->first = *(void **)item;
        free(item);
    }
    list->count = 0;
}

static void chr_free_reply(void *object) {
    redisReply *reply = object;
    if (reply == NULL) return;
    switch (reply->type) {
    case REDIS_REPLY_ARRAY:
        if (reply->element != NULL) {
            for (size_t index = 0; index < reply->elements; index++) chr_free_reply(reply->element[index]);
            if (reply->elements <= CHR_SMALL_ARRAY) chr_give(&chr_pool.arrays, reply->element);
            else free(reply->element);
        }
        break;
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING:
        if (reply->str != NULL) {
            if (reply->len < CHR_SMALL_STRING) chr_give(&chr_pool.strings, reply->str);
            else free(reply->str);
        }
        break;
    default:
        break;
    }
    chr_give(&chr_pool.replies, reply);
}

static redisReply *chr_new_reply(int type) {
    redisReply *reply = chr_take(&chr_pool.replies, sizeof(redisReply));
    if (reply == NULL) return NULL;
    memset(reply, 0, sizeof(*reply));
    reply->type = type;
    return reply;
}

/// Links a finished child into its array, as hiredis's functions do.
static void *chr_adopt(const redisReadTask *task, redisReply *reply) {
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = reply;
    }
    return reply;
}

static void *chr_create_string(const redisReadTask *task, char *bytes, size_t length) {
    redisReply *reply = chr_new_reply(task->type);
    if (reply == NULL) return NULL;
    char *copy = length < CHR_SMALL_STRING ? chr_take(&chr_pool.strings, CHR_SMALL_STRING) : malloc(length + 1);
    if (copy == NULL) {
        chr_free_reply(reply);
        return NULL;
    }
    memcpy(copy, bytes, length);
    copy[length] = '\0';
    reply->str = copy;
    reply->len = length;
    return chr_adopt(task, reply);
}

static void *chr_create_array(const redisReadTask *task, int elements) {
    redisReply *reply = chr_new_reply(REDIS_REPLY_ARRAY);
    if (reply == NULL) return NULL;
    if (elements > 0) {
        size_t count = (size_t)elements;
        reply->element = count <= CHR_SMALL_ARRAY
            ? chr_take(&chr_pool.arrays, CHR_SMALL_ARRAY * sizeof(redisReply *))
            : malloc(count * sizeof(redisReply *));
        if (reply->element == NULL) {
            chr_free_reply(reply);
            return NULL;
        }
        // Zeroed, as calloc would: a reply abandoned half-parsed is freed element by element.
        memset(reply->element, 0, count * sizeof(redisReply *));
    }
    reply->elements = (size_t)elements;
    return chr_adopt(task, reply);
}

static void *chr_create_integer(const redisReadTask *task, long long value) {
    redisReply *reply = chr_new_reply(REDIS_REPLY_INTEGER);
    if (reply == NULL) return NULL;
    reply->integer = value;
    return chr_adopt(task, reply);
}

static void *chr_create_nil(const redisReadTask *task) {
    redisReply *reply = chr_new_reply(REDIS_REPLY_NIL);
    if (reply == NULL) return NULL;
    return chr_adopt(task, reply);
}

static redisReplyObjectFunctions chr_reply_functions = {
    chr_create_string,
    chr_create_array,
    chr_create_integer,
    chr_create_nil,
    chr_free_reply,
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
    size_t rejected;            // error replies chr_on_publish_reply saw (chr_io_take_rejected)
    char rejection[128];        // the text of the last of them
    long long receivers;        // integer replies chr_on_publish_reply saw, summed (chr_io_take_receivers)
    chr_io_message_fn *on_message;  // set: "message" pushes bypass hiredis (chr_io_deliver_messages)
    char *partial;              // with on_message: the start of a frame that is not complete yet
    size_t partial_length, partial_capacity;
};

static void chr_free_conn(chr_io_conn *conn) {
    free(conn->partial);
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

static void chr_add_read(void *privdata) {
    chr_io_conn *conn = privdata;
    chr_arm(conn->read_event, &conn->reading);
}

static void chr_del_read(void *privdata) {
    chr_io_conn *conn = privdata;
    chr_disarm(conn->read_event, &conn->reading);
}

static void chr_add_write(void *privdata) {
    chr_io_conn *conn = privdata;
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
    chr_disarm(conn->write_event, &conn->writing);
}

static void chr_cleanup(void *privdata) {
    chr_io_conn *conn = privdata;
    chr_unqueue(conn);
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
static void chr_write(chr_io_conn *conn) {
    redisContext *c = &conn->ac->c;
    if ((c->flags & REDIS_CONNECTED) && c->err == 0) {
        // redisBufferWrite's success path, except that an emptied output buffer keeps its memory
        // (up to CHR_IO_KEEP_OUTPUT): hiredis frees it after every complete write, and the next
        // batch of commands grew it again by doubling, a dozen reallocs and copies per batch.
        size_t length = sdslen(c->obuf);
        ssize_t written = length > 0 ? write(c->fd, c->obuf, length) : 0;
        if (written >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (written > 0 && (size_t)written == length && sdsalloc(c->obuf) > CHR_IO_KEEP_OUTPUT) {
                sdsfree(c->obuf);
                c->obuf = sdsempty();
            } else if (written > 0) {
                sdsrange(c->obuf, (int)written, -1);
            }
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
/// callbacks run) before the next. Stops when the connection goes.
static void chr_feed(chr_io_conn *conn, const char *bytes, size_t length) {
    redisAsyncContext *ac = conn->ac;
    for (size_t offset = 0; offset < length && !conn->freed; offset += CHR_IO_FEED_SLICE) {
        size_t slice = length - offset < CHR_IO_FEED_SLICE ? length - offset : CHR_IO_FEED_SLICE;
        // A feed error leaves the reader in its error state; redisProcessCallbacks reports it and
        // disconnects.
        (void)redisReaderFeed(ac->c.reader, bytes + offset, slice);
        redisProcessCallbacks(ac);
    }
}

// MARK: Messages past hiredis
//
// On the subscriber connection nearly every frame is a "message" push. hiredis would parse it
// into three reply objects, copy the channel name into an sds to find the subscription's
// callback in a dict (strncasecmp on the kind, strtoll on the lengths on the way) and free it
// all again. The layer identifies pushes by their own kind and channel anyway (hiredis 0.14.1
// can hand a push to the wrong subscription callback), so here a complete "message" frame goes
// straight to the connection's on_message callback, pointing into the read buffer. Every other
// frame (subscribe and unsubscribe confirmations, replies, errors) is fed to hiredis whole and in
// order, so its reply queue and subscription bookkeeping stay exactly as before. A frame cut by
// the end of a read waits in conn->partial for the rest.

/// Parses the decimal of a RESP header line [start, end) (an optional '-' and 1-18 digits).
static int chr_parse_length(const char *start, const char *end, long long *out) {
    int negative = 0;
    if (start < end && *start == '-') {
        negative = 1;
        start++;
    }
    if (start == end || end - start > 18) return 0;
    long long value = 0;
    for (const char *p = start; p < end; p++) {
        if (*p < '0' || *p > '9') return 0;
        value = value * 10 + (*p - '0');
    }
    *out = negative ? -value : value;
    return 1;
}

/// The header line at bytes[*position]: its type byte and number. 1: parsed (position moved past
/// it), 0: incomplete, -1: malformed.
static int chr_header(const char *bytes, size_t length, size_t *position, char *type, long long *number) {
    size_t start = *position;
    if (start >= length) return 0;
    const char *cr = memchr(bytes + start, '\r', length - start);
    if (cr == NULL || (size_t)(cr - bytes) + 1 >= length) return 0;
    if (cr[1] != '\n') return -1;
    *type = bytes[start];
    *number = 0;
    if (*type == '$' || *type == '*' || *type == ':') {
        if (!chr_parse_length(bytes + start + 1, cr, number)) return -1;
    } else if (*type != '+' && *type != '-') {
        return -1;
    }
    *position = (size_t)(cr - bytes) + 2;
    return 1;
}

/// The length of the complete RESP2 frame at the start of `bytes`: > 0, or 0 if incomplete, or -1
/// if malformed (hiredis then reports the protocol error and disconnects).
static long long chr_frame_length(const char *bytes, size_t length) {
    size_t position = 0;
    long long remaining = 1;  // frames still to read, counting nested elements
    while (remaining > 0) {
        char type;
        long long number;
        int header = chr_header(bytes, length, &position, &type, &number);
        if (header <= 0) return header;
        remaining -= 1;
        if (type == '$' && number >= 0) {
            if ((unsigned long long)number > length - position || length - position - (size_t)number < 2) return 0;
            position += (size_t)number;
            if (bytes[position] != '\r' || bytes[position + 1] != '\n') return -1;
            position += 2;
        } else if (type == '*' && number > 0) {
            remaining += number;
        } else if ((type == '$' || type == '*') && number < -1) {
            return -1;
        }
    }
    return (long long)position;
}

/// One bulk string at bytes[*position]: 1 (start and length set, position moved), 0: incomplete,
/// -1: not a non-nil bulk string.
static int chr_bulk_at(const char *bytes, size_t length, size_t *position, const char **start, size_t *count) {
    char type;
    long long number;
    size_t at = *position;
    int header = chr_header(bytes, length, &at, &type, &number);
    if (header <= 0) return header;
    if (type != '$' || number < 0) return -1;
    if ((unsigned long long)number > length - at || length - at - (size_t)number < 2) return 0;
    if (bytes[at + number] != '\r' || bytes[at + number + 1] != '\n') return -1;
    *start = bytes + at;
    *count = (size_t)number;
    *position = at + (size_t)number + 2;
    return 1;
}

/// Whether the frame at the start of `bytes` is a "message" push: > 0 its length (channel and
/// payload set), 0 incomplete, -1 some other frame.
static long long chr_message_frame(const char *bytes, size_t length, const char **channel, size_t *channel_length,
                                   const char **payload, size_t *payload_length) {
    static const char prefix[] = "*3\r\n$7\r\nmessage\r\n";
    size_t known = length < sizeof(prefix) - 1 ? length : sizeof(prefix) - 1;
    if (memcmp(bytes, prefix, known) != 0) return -1;
    if (known < sizeof(prefix) - 1) return 0;
    size_t position = sizeof(prefix) - 1;
    int found = chr_bulk_at(bytes, length, &position, channel, channel_length);
    if (found <= 0) return found;
    found = chr_bulk_at(bytes, length, &position, payload, payload_length);
    if (found <= 0) return found;
    return (long long)position;
}

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

/// Delivers what one read brought (after any partial frame from the reads before), frame by frame.
static void chr_scan(chr_io_conn *conn, const char *read_bytes, size_t read_length) {
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
        const char *channel, *payload;
        size_t channel_length, payload_length;
        long long frame = chr_message_frame(rest, available, &channel, &channel_length, &payload, &payload_length);
        if (frame > 0) {
            conn->on_message(conn->ac, channel, channel_length, payload, payload_length);
            offset += (size_t)frame;
            continue;
        }
        if (frame < 0) frame = chr_frame_length(rest, available);
        if (frame == 0) break;  // incomplete: wait for the rest
        if (frame < 0) {
            // Malformed: hiredis reports the protocol error and disconnects.
            chr_feed(conn, rest, available);
            offset = length;
            break;
        }
        chr_feed(conn, rest, (size_t)frame);
        offset += (size_t)frame;
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

static void chr_on_read(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    chr_io_conn *conn = arg;
    redisAsyncContext *ac = conn->ac;
    conn->loop->activity += 1;
    if (!(ac->c.flags & REDIS_CONNECTED)) {
        // The connect's outcome: hiredis's own path. It may free the context (and conn).
        redisAsyncHandleRead(ac);
        return;
    }
    chr_enter(conn);
    char *buffer = conn->loop->buffer;
    for (int round = 0; round < CHR_IO_READ_ROUNDS && !conn->freed; round++) {
        ssize_t count = read(fd, buffer, CHR_IO_READ_CHUNK);
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
    chr_leave(conn);
}

// MARK: Publishing

/// The callback of every PUBLISH of a run but the last: an error reply is counted for the run's last
/// callback (chr_io_take_rejected), and so is the receiver count of an integer one
/// (chr_io_take_receivers). A NULL reply (the connection is going away) reaches the last callback too.
static void chr_on_publish_reply(redisAsyncContext *ac, void *object, void *privdata) {
    (void)privdata;
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
}

/// Writes `value` in decimal at `out`; returns the number of digits.
static size_t chr_decimal(char *out, size_t value) {
    char digits[20];
    size_t count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    for (size_t index = 0; index < count; index++) out[index] = digits[count - 1 - index];
    return count;
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

size_t chr_io_publish(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata, const void *channel,
                      size_t channel_length, const void *payloads, const size_t *ends, size_t count) {
    chr_io_conn *conn = ac->ev.data;
    // hiredis refuses commands only for these flags; past this check every command is queued.
    if (conn == NULL || count == 0 || (ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))) return 0;
    static const char header[] = "*3\r\n$7\r\nPUBLISH\r\n";
    size_t longest = 0;
    for (size_t index = 0; index < count; index++) {
        size_t length = ends[index] - (index == 0 ? 0 : ends[index - 1]);
        if (length > longest) longest = length;
    }
    size_t needed = sizeof(header) - 1 + (channel_length + 26) + (longest + 26);
    chr_io_loop *loop = conn->loop;
    if (needed > loop->scratch_capacity) {
        char *grown = realloc(loop->scratch, needed);
        if (grown == NULL) return 0;
        loop->scratch = grown;
        loop->scratch_capacity = needed;
    }
    char *command = loop->scratch;
    memcpy(command, header, sizeof(header) - 1);
    size_t prefix = sizeof(header) - 1 + chr_bulk(command + sizeof(header) - 1, channel, channel_length);
    const char *bytes = payloads;
    size_t queued = 0;
    for (size_t index = 0; index < count; index++) {
        size_t start = index == 0 ? 0 : ends[index - 1];
        size_t length = prefix + chr_bulk(command + prefix, bytes + start, ends[index] - start);
        int last = index + 1 == count;
        if (redisAsyncFormattedCommand(ac, last ? fn : chr_on_publish_reply, last ? privdata : NULL, command, length) != REDIS_OK)
            break;
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

long long chr_io_take_receivers(redisAsyncContext *ac) {
    chr_io_conn *conn = ac->ev.data;
    if (conn == NULL) return 0;
    long long receivers = conn->receivers;
    conn->receivers = 0;
    return receivers;
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

redisReplyObjectFunctions *chr_io_reply_functions(void) { return &chr_reply_functions; }

void chr_io_release_reply_pool(void) {
    chr_drain(&chr_pool.replies);
    chr_drain(&chr_pool.arrays);
    chr_drain(&chr_pool.strings);
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
    ac->c.reader->fn = &chr_reply_functions;
    // As the stock adapter: read for the server's first bytes, write for the connect's completion.
    chr_arm(conn->read_event, &conn->reading);
    chr_arm(conn->write_event, &conn->writing);
    return REDIS_OK;
}

uint64_t chr_io_activity(const chr_io_loop *loop) { return loop->activity; }

void chr_io_deliver_messages(redisAsyncContext *ac, chr_io_message_fn *fn) {
    chr_io_conn *conn = ac->ev.data;
    if (conn != NULL) conn->on_message = fn;
}
