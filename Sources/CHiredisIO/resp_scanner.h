#ifndef CHANNELS_REDIS_RESP_SCANNER_H
#define CHANNELS_REDIS_RESP_SCANNER_H

// The RESP2 frame scanner of the subscriber's fast path (message_fast_path.c): where does the frame
// at the start of a buffer end, and is it a "message" push (then where are its channel and
// payload)? The bytes come from the server unchecked, so this is the one place that parses
// untrusted input outside hiredis: every length is checked against the bytes there are before it
// is used, and nothing is allocated or written but the caller's chr_io_frame.
//
// Why not hiredis's reader: it would build reply objects for every frame only to find the end of
// one (see message_fast_path.c). The scanner builds nothing: it only walks headers, and jumps over
// bulk strings by their length.
//
// Its verdicts are chosen so that the fast path never disagrees with hiredis 0.14.1 about a frame
// Redis sends: a complete frame is exactly the bytes hiredis takes for one reply, a message push
// is what hiredis parses as ["message", channel, payload], and a frame is incomplete only while
// hiredis too needs more bytes (or refuses it). What the scanner cannot read (MALFORMED) the fast
// path hands to hiredis with everything after it: hiredis parses it (the scanner is stricter about
// a lone CR in a status or error line, numbers of 19 digits and the CRLF after a bulk string) or
// reports the protocol error and disconnects. The other way round, the scanner is laxer than
// hiredis only about what Redis never writes: leading zeros and "-0" in numbers, nesting deeper
// than 7 levels, and a bad type byte is seen only once its line is complete. An array announcing
// more than INT_MAX elements is malformed to both (the scanner does not wait for its elements).
//
// It calls nothing of hiredis or libevent and keeps no state: tested on its own through
// chr_io_scan_frame (resp_scanner.c; Tests/ChannelsRedisTests/RESPScannerTests.swift) and fuzzed
// by compiling resp_scanner.c alone (Tests/Fuzz/RESPScanner/resp_scanner_fuzz.c, which checks
// every verdict against hiredis's reader).
//
// Static inline functions in a private header, not functions of resp_scanner.c: the fast path runs
// chr_scan_frame on every frame, and compiled into chr_scan it is inlined there; called in another
// file it would cost the read path measurably more instructions per message (see Benchmarks.md,
// Findings).

#include "hiredis_io.h"

#include <limits.h>
#include <string.h>

/// Parses the decimal of a RESP header line [start, end) (an optional '-' and 1-18 digits).
static inline int chr_parse_length(const char *start, const char *end, long long *out) {
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
static inline int chr_header(const char *bytes, size_t length, size_t *position, char *type, long long *number) {
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
static inline long long chr_frame_length(const char *bytes, size_t length) {
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
        } else if (type == '*' && number > INT_MAX) {
            return -1;  // hiredis refuses these ("Multi-bulk length out of range"): so does the scanner
        } else if (type == '*' && number > 0) {
            // Saturated: nested counts of up to 18 digits can add up past LLONG_MAX (ten of them
            // do), and a signed overflow would make such a frame look "complete" where it wrapped.
            // A frame that still lacks LLONG_MAX elements never completes: the verdict is the true
            // sum's.
            remaining = number > LLONG_MAX - remaining ? LLONG_MAX : remaining + number;
        } else if ((type == '$' || type == '*') && number < -1) {
            return -1;
        }
    }
    return (long long)position;
}

/// One bulk string at bytes[*position]: 1 (start and length set, position moved), 0: incomplete,
/// -1: not a non-nil bulk string.
static inline int chr_bulk_at(const char *bytes, size_t length, size_t *position, const char **start, size_t *count) {
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
static inline long long chr_message_frame(const char *bytes, size_t length, const char **channel,
                                          size_t *channel_length, const char **payload, size_t *payload_length) {
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

/// An `:N` integer line at bytes[*position] of a complete frame: 1 (value set, position moved), or
/// -1 for anything else.
static inline int chr_integer_at(const char *bytes, size_t length, size_t *position, long long *value) {
    char type;
    size_t at = *position;
    if (chr_header(bytes, length, &at, &type, value) != 1 || type != ':') return -1;
    *position = at;
    return 1;
}

/// chr_io_classify_shard_frame (hiredis_io.h): what a complete frame is to sharded pub/sub. Only
/// exact shapes count: `*3` with the kind as a bulk string, a bulk channel, then a bulk payload
/// (smessage) or an integer ((un)subscribe); anything else is CHR_IO_SHARD_OTHER and goes to hiredis.
static inline void chr_shard_frame(const char *bytes, size_t length, chr_io_shard_frame *frame) {
    memset(frame, 0, sizeof(*frame));
    if (length >= 3 && bytes[0] == '-') {
        const char *cr = memchr(bytes, '\r', length);
        if (cr == NULL) return;
        frame->kind = CHR_IO_SHARD_ERROR;
        frame->channel_offset = 1;
        frame->channel_length = (size_t)(cr - bytes) - 1;
        return;
    }
    static const char smessage[] = "*3\r\n$8\r\nsmessage\r\n";
    static const char ssubscribe[] = "*3\r\n$10\r\nssubscribe\r\n";
    static const char sunsubscribe[] = "*3\r\n$12\r\nsunsubscribe\r\n";
    chr_io_shard_frame_kind kind;
    size_t position;
    if (length > sizeof(smessage) - 1 && memcmp(bytes, smessage, sizeof(smessage) - 1) == 0) {
        kind = CHR_IO_SHARD_MESSAGE;
        position = sizeof(smessage) - 1;
    } else if (length > sizeof(ssubscribe) - 1 && memcmp(bytes, ssubscribe, sizeof(ssubscribe) - 1) == 0) {
        kind = CHR_IO_SHARD_SUBSCRIBE;
        position = sizeof(ssubscribe) - 1;
    } else if (length > sizeof(sunsubscribe) - 1 && memcmp(bytes, sunsubscribe, sizeof(sunsubscribe) - 1) == 0) {
        kind = CHR_IO_SHARD_UNSUBSCRIBE;
        position = sizeof(sunsubscribe) - 1;
    } else {
        return;
    }
    const char *channel, *payload;
    size_t channel_length, payload_length;
    if (chr_bulk_at(bytes, length, &position, &channel, &channel_length) != 1) return;
    long long count = 0;
    if (kind == CHR_IO_SHARD_MESSAGE) {
        if (chr_bulk_at(bytes, length, &position, &payload, &payload_length) != 1) return;
        frame->payload_offset = (size_t)(payload - bytes);
        frame->payload_length = payload_length;
    } else if (chr_integer_at(bytes, length, &position, &count) != 1) {
        return;
    }
    if (position != length) {
        frame->payload_offset = frame->payload_length = 0;
        return;
    }
    frame->kind = kind;
    frame->channel_offset = (size_t)(channel - bytes);
    frame->channel_length = channel_length;
    frame->count = count;
}

/// chr_io_scan_frame (hiredis_io.h): the frame at the start of bytes[0, length), and its kind.
static inline chr_io_scan_status chr_scan_frame(const char *bytes, size_t length, chr_io_frame *frame) {
    memset(frame, 0, sizeof(*frame));
    if (length == 0) return CHR_IO_SCAN_INCOMPLETE;  // (and no memcmp of a NULL buffer)
    const char *channel, *payload;
    size_t channel_length, payload_length;
    long long found = chr_message_frame(bytes, length, &channel, &channel_length, &payload, &payload_length);
    if (found > 0) {
        frame->length = (size_t)found;
        frame->is_message = 1;
        frame->channel_offset = (size_t)(channel - bytes);
        frame->channel_length = channel_length;
        frame->payload_offset = (size_t)(payload - bytes);
        frame->payload_length = payload_length;
        return CHR_IO_SCAN_COMPLETE;
    }
    if (found < 0) found = chr_frame_length(bytes, length);
    if (found == 0) return CHR_IO_SCAN_INCOMPLETE;
    if (found < 0) return CHR_IO_SCAN_MALFORMED;
    frame->length = (size_t)found;
    return CHR_IO_SCAN_COMPLETE;
}

#endif
