#ifndef CHANNELS_REDIS_CHIREDIS_SHIM_H
#define CHANNELS_REDIS_CHIREDIS_SHIM_H

// The libc headers must come before any libevent header: event2/event-config.h defines
// _GNU_SOURCE, and when it is seen first a clean build fails with an `fd_set` mismatch
// against Swift's Glibc module.
#include <sys/types.h>
#include <sys/time.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/prctl.h>

#include <event2/event.h>
#include <event2/thread.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

// Names the calling thread (15 characters at most) so it shows in top, perf and gdb.
// prctl is variadic, which Swift cannot call.
static inline void chiredis_set_thread_name(const char *name) {
    prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

#endif
