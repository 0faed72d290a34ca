// The scanner's public entry, chr_io_scan_frame (hiredis_io.h), for tests and fuzzers: the
// scanner itself is resp_scanner.h (why a header: see there), the same code the fast path runs.
// .ci/fuzz compiles this file alone with Tests/Fuzz/RESPScanner/resp_scanner_fuzz.c.

#include "resp_scanner.h"

chr_io_scan_status chr_io_scan_frame(const char *bytes, size_t length, chr_io_frame *frame) {
    return chr_scan_frame(bytes, length, frame);
}

void chr_io_classify_shard_frame(const char *bytes, size_t length, chr_io_shard_frame *frame) {
    chr_shard_frame(bytes, length, frame);
}
