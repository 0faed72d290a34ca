// libFuzzer target for CHiredisIO's RESP2 frame scanner (Sources/CHiredisIO/resp_scanner.c), the
// one parser of untrusted server bytes outside hiredis. Plain C: .ci/fuzz compiles the scanner's
// source file directly with this one (-fsanitize=fuzzer,address,undefined) and links libhiredis,
// whose reader is the reference the scanner is checked against. No server, no libevent.
//
// Besides crashes, out-of-bounds reads (every buffer scanned is an allocation of exactly the
// scanned length) and undefined behaviour (signed overflow included), it aborts when a verdict is
// wrong in a way the fast path (message_fast_path.c) would get wrong:
//
// 1. Shape: a complete frame has 1 ... length bytes; a message's channel and payload lie inside it.
// 2. Cut anywhere: as a buffer grows byte by byte, the verdict stays INCOMPLETE until it turns
//    COMPLETE or MALFORMED, and then never changes (the same frame, the same spans), whatever
//    follows. The fast path scans again after every read and relies on this.
// 3. hiredis agrees wherever it matters: when hiredis's reader parses a reply from the bytes, the
//    scanner must not wait for more (INCOMPLETE), and a COMPLETE frame must be exactly the bytes
//    hiredis took; when it is a message push, hiredis must see the array ["message", channel,
//    payload] with the same bytes, and when hiredis sees such an array, so must the scanner. When
//    hiredis needs more bytes, the scanner must not call a frame complete. (MALFORMED where hiredis
//    parses is allowed: the fast path then hands everything to hiredis. A frame hiredis refuses may
//    be anything: hiredis gets it and disconnects.)

#include "hiredis_io.h"

#include <hiredis/hiredis.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(HIREDIS_MAJOR) || HIREDIS_MAJOR != 0 || HIREDIS_MINOR != 14
#error "the reference reader's fields read here (pos, len) are hiredis 0.14's"
#endif

#define CHECK(condition, ...)                                                   \
    do {                                                                        \
        if (!(condition)) {                                                     \
            fprintf(stderr, "resp_scanner_fuzz: %s: ", #condition);             \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
            abort();                                                            \
        }                                                                       \
    } while (0)

// MARK: The reference: hiredis's reader, with reply functions that allocate only what they copy

/// What hiredis built: the root's type and size, and its first three elements if it is an array.
typedef struct reference_reply {
    int type;
    long long elements;
    int element_types[3];
    char *element_bytes[3];
    size_t element_lengths[3];
} reference_reply;

static reference_reply reference;
static char reference_object;  // every object is this: nothing is built, so nothing is freed

static void *reference_record(const redisReadTask *task, int type, const char *bytes, size_t length) {
    if (task->parent == NULL) {
        reference.type = type;
    } else if (task->parent->parent == NULL && task->idx >= 0 && task->idx < 3) {
        reference.element_types[task->idx] = type;
        if (bytes != NULL) {
            reference.element_bytes[task->idx] = malloc(length + 1);
            if (reference.element_bytes[task->idx] == NULL) return NULL;
            memcpy(reference.element_bytes[task->idx], bytes, length);
            reference.element_lengths[task->idx] = length;
        }
    }
    return &reference_object;
}

static void *reference_string(const redisReadTask *task, char *bytes, size_t length) {
    return reference_record(task, task->type, bytes, length);
}

static void *reference_array(const redisReadTask *task, int elements) {
    // hiredis's own functions would allocate `elements` pointers (up to INT_MAX of them).
    if (task->parent == NULL) reference.elements = elements;
    return reference_record(task, REDIS_REPLY_ARRAY, NULL, 0);
}

static void *reference_integer(const redisReadTask *task, long long value) {
    (void)value;
    return reference_record(task, REDIS_REPLY_INTEGER, NULL, 0);
}

static void *reference_nil(const redisReadTask *task) { return reference_record(task, REDIS_REPLY_NIL, NULL, 0); }

static void reference_free(void *object) { (void)object; }

static redisReplyObjectFunctions reference_functions = {
    .createString = reference_string,
    .createArray = reference_array,
    .createInteger = reference_integer,
    .createNil = reference_nil,
    .freeObject = reference_free,
};

enum { REFERENCE_ERROR, REFERENCE_NEEDS_MORE, REFERENCE_REPLY };

static void reference_reset(void) {
    for (int index = 0; index < 3; index++) free(reference.element_bytes[index]);
    memset(&reference, 0, sizeof(reference));
}

/// hiredis's verdict on `bytes`; for a reply, `consumed` is how many bytes it took.
static int reference_parse(const uint8_t *bytes, size_t length, size_t *consumed) {
    reference_reset();
    redisReader *reader = redisReaderCreateWithFunctions(&reference_functions);
    CHECK(reader != NULL, "out of memory");
    int verdict = REFERENCE_ERROR;
    void *reply = NULL;
    if (redisReaderFeed(reader, (const char *)bytes, length) == REDIS_OK && redisReaderGetReply(reader, &reply) == REDIS_OK) {
        if (reply == NULL) {
            verdict = REFERENCE_NEEDS_MORE;
        } else {
            verdict = REFERENCE_REPLY;
            *consumed = length - (reader->len - reader->pos);  // (pos and len move together when it compacts)
        }
    }
    redisReaderFree(reader);
    return verdict;
}

/// Whether hiredis's reply is an array of exactly `kind`, a string and then a string (`payload_is_string`) or an
/// integer: what chr_io_classify_shard_frame must call a sharded push.
static int reference_is_shard_push(const char *kind, int payload_is_string) {
    size_t length = strlen(kind);
    return reference.type == REDIS_REPLY_ARRAY && reference.elements == 3 && reference.element_types[0] == REDIS_REPLY_STRING
        && reference.element_types[1] == REDIS_REPLY_STRING
        && reference.element_types[2] == (payload_is_string ? REDIS_REPLY_STRING : REDIS_REPLY_INTEGER)
        && reference.element_lengths[0] == length && memcmp(reference.element_bytes[0], kind, length) == 0;
}

static int reference_is_message(void) {
    return reference.type == REDIS_REPLY_ARRAY && reference.elements == 3 && reference.element_types[0] == REDIS_REPLY_STRING
        && reference.element_types[1] == REDIS_REPLY_STRING && reference.element_types[2] == REDIS_REPLY_STRING
        && reference.element_lengths[0] == 7 && memcmp(reference.element_bytes[0], "message", 7) == 0;
}

// MARK: The scanner, on exact-size copies

static uint8_t *scratch;
static size_t scratch_capacity;

/// Scans bytes[0, length) copied to the end of a heap buffer of exactly `capacity` bytes, so that
/// reading at or past `length` is a heap-buffer-overflow under AddressSanitizer.
static chr_io_scan_status scan(const uint8_t *bytes, size_t length, chr_io_frame *frame) {
    if (length == 0) return chr_io_scan_frame(NULL, 0, frame);
    if (length > scratch_capacity) {
        free(scratch);
        scratch = malloc(length);
        CHECK(scratch != NULL, "out of memory");
        scratch_capacity = length;
    }
    uint8_t *copy = scratch + scratch_capacity - length;
    memcpy(copy, bytes, length);
    return chr_io_scan_frame((const char *)copy, length, frame);
}

static int same(chr_io_scan_status a, const chr_io_frame *x, chr_io_scan_status b, const chr_io_frame *y) {
    return a == b && memcmp(x, y, sizeof(*x)) == 0;
}

static void check_shape(chr_io_scan_status status, const chr_io_frame *frame, size_t length) {
    CHECK(status == CHR_IO_SCAN_COMPLETE || status == CHR_IO_SCAN_INCOMPLETE || status == CHR_IO_SCAN_MALFORMED,
          "status %d", (int)status);
    if (status != CHR_IO_SCAN_COMPLETE) {
        chr_io_frame zero;
        memset(&zero, 0, sizeof(zero));
        CHECK(memcmp(frame, &zero, sizeof(zero)) == 0, "a frame that is not complete must be zeroed");
        return;
    }
    CHECK(frame->length > 0 && frame->length <= length, "length %zu of %zu bytes", frame->length, length);
    CHECK(frame->is_message == 0 || frame->is_message == 1, "is_message %d", frame->is_message);
    if (!frame->is_message) {
        CHECK(frame->channel_offset == 0 && frame->channel_length == 0 && frame->payload_offset == 0
                  && frame->payload_length == 0,
              "spans set on a frame that is not a message");
        return;
    }
    CHECK(frame->channel_offset <= frame->length && frame->channel_length <= frame->length - frame->channel_offset,
          "channel outside the frame");
    CHECK(frame->payload_offset >= frame->channel_offset + frame->channel_length, "payload before the channel ends");
    CHECK(frame->payload_offset <= frame->length && frame->payload_length <= frame->length - frame->payload_offset,
          "payload outside the frame");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    chr_io_frame frame;
    chr_io_scan_status status = scan(data, size, &frame);
    check_shape(status, &frame, size);

    // 2. Cut anywhere: every prefix, in increasing length (for inputs over 192 bytes, the first and
    // last 64 cuts and 64 between them: scanning every prefix costs the square of the length).
    int settled = 0;
    chr_io_scan_status settled_status = CHR_IO_SCAN_INCOMPLETE;
    chr_io_frame settled_frame;
    memset(&settled_frame, 0, sizeof(settled_frame));
    size_t step = size <= 192 ? 1 : size / 64;
    for (size_t cut = 0; cut <= size; cut += (cut < 64 || size - cut <= 64) ? 1 : step) {
        chr_io_frame prefix_frame;
        chr_io_scan_status prefix = scan(data, cut, &prefix_frame);
        check_shape(prefix, &prefix_frame, cut);
        if (settled) {
            CHECK(same(prefix, &prefix_frame, settled_status, &settled_frame),
                  "the verdict at %zu bytes changed when more bytes came (%zu)", cut, size);
        } else if (prefix != CHR_IO_SCAN_INCOMPLETE) {
            settled = 1;
            settled_status = prefix;
            settled_frame = prefix_frame;
        }
    }
    CHECK(same(status, &frame, settled ? settled_status : CHR_IO_SCAN_INCOMPLETE, &settled_frame), "prefixes disagree");
    if (status == CHR_IO_SCAN_COMPLETE) {
        // The frame alone, without what follows it.
        chr_io_frame alone;
        CHECK(same(scan(data, frame.length, &alone), &alone, status, &frame), "the frame scanned alone differs");
    }

    // 3. hiredis.
    size_t consumed = 0;
    int verdict = reference_parse(data, size, &consumed);
    if (verdict == REFERENCE_REPLY) {
        CHECK(status != CHR_IO_SCAN_INCOMPLETE, "hiredis parsed a reply of %zu bytes that the scanner waits on", consumed);
        if (status == CHR_IO_SCAN_COMPLETE) {
            CHECK(frame.length == consumed, "scanner frame %zu bytes, hiredis reply %zu", frame.length, consumed);
            CHECK(frame.is_message == reference_is_message(), "scanner message %d, hiredis message %d", frame.is_message,
                  reference_is_message());
            if (frame.is_message) {
                CHECK(frame.channel_length == reference.element_lengths[1]
                          && memcmp(data + frame.channel_offset, reference.element_bytes[1], frame.channel_length) == 0,
                      "channels differ");
                CHECK(frame.payload_length == reference.element_lengths[2]
                          && memcmp(data + frame.payload_offset, reference.element_bytes[2], frame.payload_length) == 0,
                      "payloads differ");
            }
        }
        if (status == CHR_IO_SCAN_COMPLETE) {
            // The sharded pub/sub classification of the same complete frame (a copy of exactly its size, as for the
            // scanner): within the frame, and a push exactly when hiredis parsed that shape.
            memcpy(scratch + scratch_capacity - frame.length, data, frame.length);
            const char *copy = (const char *)scratch + scratch_capacity - frame.length;
            chr_io_shard_frame shard;
            chr_io_classify_shard_frame(copy, frame.length, &shard);
            CHECK(shard.channel_offset + shard.channel_length <= frame.length, "shard channel out of the frame");
            CHECK(shard.payload_offset + shard.payload_length <= frame.length, "shard payload out of the frame");
            int smessage = reference_is_shard_push("smessage", 1);
            int ssubscribe = reference_is_shard_push("ssubscribe", 0), sunsubscribe = reference_is_shard_push("sunsubscribe", 0);
            CHECK((shard.kind == CHR_IO_SHARD_MESSAGE) == smessage, "classified %d, hiredis smessage %d", shard.kind, smessage);
            CHECK((shard.kind == CHR_IO_SHARD_SUBSCRIBE) == ssubscribe, "classified %d, hiredis ssubscribe %d", shard.kind, ssubscribe);
            CHECK((shard.kind == CHR_IO_SHARD_UNSUBSCRIBE) == sunsubscribe, "classified %d, hiredis sunsubscribe %d", shard.kind,
                  sunsubscribe);
            CHECK((shard.kind == CHR_IO_SHARD_ERROR) == (reference.type == REDIS_REPLY_ERROR), "classified %d, hiredis type %d",
                  shard.kind, reference.type);
            if (shard.kind != CHR_IO_SHARD_OTHER && shard.kind != CHR_IO_SHARD_ERROR) {
                CHECK(shard.channel_length == reference.element_lengths[1]
                          && memcmp(data + shard.channel_offset, reference.element_bytes[1], shard.channel_length) == 0,
                      "shard channels differ");
            }
        }
    } else if (verdict == REFERENCE_NEEDS_MORE) {
        CHECK(status != CHR_IO_SCAN_COMPLETE, "the scanner found a frame of %zu bytes where hiredis needs more", frame.length);
    }
    reference_reset();
    return 0;
}
