// TLS for rediss:// endpoints, with OpenSSL over the socket the glue already reads and writes
// (hiredis 0.14.1 has no TLS). hiredis keeps doing what it does for a plain socket (formatting
// commands into its output buffer, parsing replies, running callbacks); this file changes how the
// bytes move:
//
// - The connect: hiredis detects a completed connect on the first readiness
//   (redisAsyncHandleWrite/Read → __redisAsyncHandleConnect sets REDIS_CONNECTED and runs the
//   connect callback), and then writes its output buffer with write(): the AUTH and SUBSCRIBE the
//   layer queued at connect would leave in plain text. So until the handshake is done, a TLS
//   connection's events are ours (event_adapter.c's hooks do nothing, chr_tls_owns_events):
//   writability completes the TCP connect (SO_ERROR), then SSL_connect runs on every readiness,
//   with the events armed as OpenSSL asks (WANT_READ / WANT_WRITE). Only then do we do what
//   __redisAsyncHandleConnect does (set REDIS_CONNECTED, call the connect callback) and flush the
//   queued commands through SSL_write. The layer's connect timer runs from before the TCP connect
//   to the end of its own handshake, so it covers the TLS handshake too.
// - A failed connect or handshake takes the path hiredis takes for a failed connect: the connect
//   callback with REDIS_ERR and the error text in errstr, then the context is freed (no
//   disconnect callback).
// - An open connection that fails (a TLS alert, the server gone) takes hiredis's own disconnect
//   path, redisAsyncHandleRead seeing a read error: for that one call the context's fd is -1, so
//   hiredis's read() fails with EBADF instead of reading ciphertext as RESP, and we close the fd
//   ourselves (redisFree closes only fds > 0). chr_cleanup then puts our text in errstr, which the
//   disconnect callback reads.
// - Reads and writes: SSL_read and SSL_write, either of which may want the other direction
//   (tls_read_wants_write, tls_write_wants_read). The output buffer is written in place with
//   SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: after a WANT_WRITE the
//   next SSL_write passes the same first bytes (hiredis only appends) from wherever the buffer is.
//
// Everything here runs on the event_base's thread, except chr_io_tls_create, chr_io_tls_free and
// chr_io_tls_counts (any thread: an SSL_CTX is safe to share once configured, and the counters
// are atomic).

#include "hiredis_io_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/sds.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct chr_io_tls {
    SSL_CTX *ctx;
    int verify_peer;
};

// SSL objects made and freed, for the tests' leak check (chr_io_tls_counts).
static unsigned long long chr_tls_created, chr_tls_freed;

// MARK: Configuration (any thread)

/// The reason for the last OpenSSL error of this thread, or `fallback`.
static const char *chr_tls_reason(const char *fallback) {
    unsigned long error = ERR_peek_last_error();
    const char *reason = error != 0 ? ERR_reason_error_string(error) : NULL;
    return reason != NULL ? reason : fallback;
}

chr_io_tls *chr_io_tls_create(const char *ca_file, const char *certificate_file, const char *key_file,
                              int verify_peer, char *error, size_t capacity) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(error, capacity, "cannot create an OpenSSL context: %s", chr_tls_reason("out of memory"));
        return NULL;
    }
    // Redis 6+ speaks TLS 1.2 and 1.3; nothing older is safe.
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Without read-ahead OpenSSL reads each record with two read()s (header, then body), and a
    // drained socket costs one more: three system calls per small message. With it, one read()
    // takes up to the buffer's size. Bytes it read ahead are not announced by the socket, which is
    // why chr_read reads until OpenSSL wants more (and re-arms itself when it stops early).
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, CHR_IO_READ_CHUNK);
    SSL_CTX_set_verify(ctx, verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (verify_peer) {
        int loaded = ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                     : SSL_CTX_set_default_verify_paths(ctx);
        if (loaded != 1) {
            if (ca_file != NULL) {
                snprintf(error, capacity, "cannot load the CA certificates in '%s': %s", ca_file,
                         chr_tls_reason("no certificates"));
            } else {
                snprintf(error, capacity, "cannot load the system's trusted CA certificates: %s",
                         chr_tls_reason("unknown error"));
            }
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    if (certificate_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, certificate_file) != 1) {
            snprintf(error, capacity, "cannot load the client certificate '%s': %s", certificate_file,
                     chr_tls_reason("unknown error"));
            SSL_CTX_free(ctx);
            return NULL;
        }
        const char *key = key_file != NULL ? key_file : certificate_file;  // as Python's load_cert_chain
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            snprintf(error, capacity, "cannot load the private key '%s': %s", key, chr_tls_reason("unknown error"));
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(error, capacity, "the private key '%s' does not match the client certificate '%s'", key,
                     certificate_file);
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    ERR_clear_error();
    chr_io_tls *tls = calloc(1, sizeof(*tls));
    if (tls == NULL) {
        SSL_CTX_free(ctx);
        snprintf(error, capacity, "out of memory");
        return NULL;
    }
    tls->ctx = ctx;
    tls->verify_peer = verify_peer;
    return tls;
}

void chr_io_tls_free(chr_io_tls *tls) {
    if (tls == NULL) return;
    SSL_CTX_free(tls->ctx);  // reference-counted: every SSL made from it holds its own reference
    free(tls);
}

void chr_io_tls_counts(uint64_t *created, uint64_t *freed) {
    *created = __atomic_load_n(&chr_tls_created, __ATOMIC_RELAXED);
    *freed = __atomic_load_n(&chr_tls_freed, __ATOMIC_RELAXED);
}

// MARK: A connection

int chr_io_use_tls(redisAsyncContext *ac, chr_io_tls *tls, const char *server_name, int check_hostname,
                   char *error, size_t capacity) {
    chr_io_conn *conn = ac->ev.data;
    if (conn == NULL || conn->ssl != NULL || (ac->c.flags & REDIS_CONNECTED)) {
        snprintf(error, capacity, "TLS must be set up right after chr_io_attach");
        return REDIS_ERR;
    }
    ERR_clear_error();
    SSL *ssl = SSL_new(tls->ctx);
    if (ssl == NULL) {
        snprintf(error, capacity, "cannot create a TLS connection: %s", chr_tls_reason("out of memory"));
        return REDIS_ERR;
    }
    __atomic_add_fetch(&chr_tls_created, 1, __ATOMIC_RELAXED);
    conn->ssl = ssl;  // freed with conn from here on (chr_tls_free)
    unsigned char address[16];
    int is_ip = inet_pton(AF_INET, server_name, address) == 1 || inet_pton(AF_INET6, server_name, address) == 1;
    int ok = SSL_set_fd(ssl, ac->c.fd) == 1;
    SSL_set_connect_state(ssl);
    // SNI carries host names only (RFC 6066 §3).
    if (ok && !is_ip) ok = SSL_set_tlsext_host_name(ssl, server_name) == 1;
    if (ok && tls->verify_peer && check_hostname) {
        if (is_ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name) == 1;
        } else {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(ssl, server_name) == 1;
        }
    }
    if (!ok) {
        snprintf(error, capacity, "cannot set up TLS for '%s': %s", server_name, chr_tls_reason("invalid server name"));
        return REDIS_ERR;
    }
    conn->tls_state = CHR_TLS_CONNECTING;
    // chr_io_attach armed both events: writability is the TCP connect's completion.
    return REDIS_OK;
}

int chr_io_tls_handshaking(const redisAsyncContext *ac) {
    const chr_io_conn *conn = ac->ev.data;
    return conn != NULL && conn->ssl != NULL && conn->tls_state == CHR_TLS_HANDSHAKING;
}

void chr_tls_free(chr_io_conn *conn) {
    if (conn->ssl == NULL) return;
    SSL_free(conn->ssl);  // the socket BIO does not own the fd (SSL_set_fd: BIO_NOCLOSE)
    conn->ssl = NULL;
    __atomic_add_fetch(&chr_tls_freed, 1, __ATOMIC_RELAXED);
}

void chr_tls_cleanup(chr_io_conn *conn) {
    if (conn->ssl == NULL) return;
    if (conn->tls_error[0] != '\0') {
        // hiredis's disconnect callback runs after this, with errstr: say what TLS saw, not EBADF.
        redisContext *c = &conn->ac->c;
        snprintf(c->errstr, sizeof(c->errstr), "%s", conn->tls_error);
    } else if (conn->tls_state == CHR_TLS_OPEN) {
        // Our close: tell the server (one non-blocking attempt; the socket closes next anyway).
        ERR_clear_error();
        (void)SSL_shutdown(conn->ssl);
        ERR_clear_error();
    }
}

int chr_tls_has_pending(chr_io_conn *conn) { return conn->ssl != NULL && SSL_has_pending(conn->ssl); }

/// Why the last SSL_connect, SSL_read or SSL_write failed, into conn->tls_error.
static void chr_tls_describe(chr_io_conn *conn, int result, int ssl_error, int handshake) {
    const char *what = handshake ? "TLS handshake failed" : "TLS error";
    // Without SSL_VERIFY_PEER a failed verification does not stop the handshake: not the reason then.
    long verify = SSL_get_verify_result(conn->ssl);
    if (handshake && verify != X509_V_OK && (SSL_get_verify_mode(conn->ssl) & SSL_VERIFY_PEER)) {
        const char *reason = X509_verify_cert_error_string(verify);
        if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
            const char *name = SSL_get_servername(conn->ssl, TLSEXT_NAMETYPE_host_name);
            if (name == NULL) name = conn->ac->c.tcp.host;
            snprintf(conn->tls_error, sizeof(conn->tls_error),
                     "TLS certificate verification failed: %s (the certificate is not for %s)", reason,
                     name != NULL ? name : "this host");
        } else {
            snprintf(conn->tls_error, sizeof(conn->tls_error), "TLS certificate verification failed: %s", reason);
        }
        return;
    }
    unsigned long error = ERR_peek_last_error();
    if (error != 0 && ERR_GET_LIB(error) == ERR_LIB_SSL) {
        int code = ERR_GET_REASON(error);
        if (code == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            snprintf(conn->tls_error, sizeof(conn->tls_error), "%s",
                     handshake ? "TLS handshake failed: the server closed the connection" : "Server closed the connection");
            return;
        }
        // A plain-text server answers a ClientHello with a RESP error ('-'), not a TLS record.
        const char *hint = code == SSL_R_WRONG_VERSION_NUMBER || code == SSL_R_PACKET_LENGTH_TOO_LONG
                               ? " (is this a plain-text port? rediss:// needs the server's --tls-port)"
                               : "";
        snprintf(conn->tls_error, sizeof(conn->tls_error), "%s: %s%s", what, chr_tls_reason("unknown error"), hint);
        return;
    }
    if (ssl_error == SSL_ERROR_ZERO_RETURN || (ssl_error == SSL_ERROR_SYSCALL && (result == 0 || errno == 0))) {
        snprintf(conn->tls_error, sizeof(conn->tls_error), "%s",
                 handshake ? "TLS handshake failed: the server closed the connection" : "Server closed the connection");
        return;
    }
    if (ssl_error == SSL_ERROR_SYSCALL) {
        snprintf(conn->tls_error, sizeof(conn->tls_error), "%s: %s", what, strerror(errno));
        return;
    }
    snprintf(conn->tls_error, sizeof(conn->tls_error), "%s: %s", what, chr_tls_reason("unknown error"));
}

/// A connect or handshake that failed: hiredis's failed-connect path (connect callback with
/// REDIS_ERR, then the context is freed, no disconnect callback).
static void chr_tls_fail_connect(chr_io_conn *conn) {
    ERR_clear_error();
    redisAsyncContext *ac = conn->ac;
    redisContext *c = &ac->c;
    c->err = REDIS_ERR_IO;
    snprintf(c->errstr, sizeof(c->errstr), "%s", conn->tls_error);
    ac->err = c->err;
    ac->errstr = c->errstr;
    conn->tls_error[0] = '\0';  // already in errstr; chr_cleanup need not copy it
    if (ac->onConnect) ac->onConnect(ac, REDIS_ERR);
    redisAsyncFree(ac);  // not inside a hiredis callback: frees now (conn survives until chr_leave)
}

/// An open connection that failed: hiredis's disconnect path for a read error (see the top).
static void chr_tls_fail(chr_io_conn *conn) {
    ERR_clear_error();
    redisAsyncContext *ac = conn->ac;
    int fd = ac->c.fd;
    ac->c.fd = -1;
    redisAsyncHandleRead(ac);  // read(-1) fails: disconnect callback, pending callbacks with NULL
    if (!conn->freed) ac->c.fd = fd;  // cannot happen (a read error always disconnects), but be safe
    else close(fd);
}

/// The handshake is done: what __redisAsyncHandleConnect does, then the queued commands go out.
static void chr_tls_open(chr_io_conn *conn) {
    redisAsyncContext *ac = conn->ac;
    conn->tls_state = CHR_TLS_OPEN;
    chr_io_conn_arm_read(conn);
    chr_io_conn_disarm_write(conn);
    ac->c.flags |= REDIS_CONNECTED;
    if (ac->onConnect) ac->onConnect(ac, REDIS_OK);
    if (conn->freed) return;
    if (sdslen(ac->c.obuf) > 0) chr_tls_on_writable(conn);
    // The server's last handshake flight may have come with more (TLS 1.3 session tickets).
    if (!conn->freed && SSL_has_pending(conn->ssl)) event_active(conn->read_event, EV_READ, 1);
}

static void chr_tls_handshake(chr_io_conn *conn) {
    ERR_clear_error();
    errno = 0;
    int result = SSL_connect(conn->ssl);
    if (result == 1) {
        chr_tls_open(conn);
        return;
    }
    int ssl_error = SSL_get_error(conn->ssl, result);
    switch (ssl_error) {
    case SSL_ERROR_WANT_READ:
        chr_io_conn_arm_read(conn);
        chr_io_conn_disarm_write(conn);  // a writable socket would wake us in a busy loop
        return;
    case SSL_ERROR_WANT_WRITE:
        chr_io_conn_arm_write(conn);
        return;
    default:
        chr_tls_describe(conn, result, ssl_error, 1);
        chr_tls_fail_connect(conn);
    }
}

void chr_tls_on_readable_before_open(chr_io_conn *conn) {
    // While the TCP connect is in progress only writability tells its outcome (an error wakes both).
    if (conn->tls_state == CHR_TLS_HANDSHAKING) chr_tls_handshake(conn);
}

static void chr_tls_write(chr_io_conn *conn) {
    redisContext *c = &conn->ac->c;
    conn->tls_write_wants_read = 0;
    while (sdslen(c->obuf) > 0) {
        size_t length = sdslen(c->obuf);
        ERR_clear_error();
        errno = 0;
        int written = SSL_write(conn->ssl, c->obuf, length > INT32_MAX ? INT32_MAX : (int)length);
        if (written > 0) {
            chr_consume_output(c, (size_t)written);
            continue;
        }
        int ssl_error = SSL_get_error(conn->ssl, written);
        if (ssl_error == SSL_ERROR_WANT_WRITE) {
            chr_io_conn_arm_write(conn);
            return;
        }
        if (ssl_error == SSL_ERROR_WANT_READ) {
            // Renegotiation or a key update: the read event (always armed) writes again.
            conn->tls_write_wants_read = 1;
            chr_io_conn_disarm_write(conn);
            return;
        }
        chr_tls_describe(conn, written, ssl_error, 0);
        chr_tls_fail(conn);
        return;
    }
    chr_io_conn_disarm_write(conn);
    chr_io_conn_arm_read(conn);
}

void chr_tls_on_writable(chr_io_conn *conn) {
    switch (conn->tls_state) {
    case CHR_TLS_CONNECTING: {
        int error = 0;
        socklen_t length = sizeof(error);
        if (getsockopt(conn->ac->c.fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
        if (error == EINPROGRESS) return;
        if (error != 0) {
            // The message hiredis gives a failed TCP connect.
            snprintf(conn->tls_error, sizeof(conn->tls_error), "%s", strerror(error));
            chr_tls_fail_connect(conn);
            return;
        }
        conn->tls_state = CHR_TLS_HANDSHAKING;
        chr_tls_handshake(conn);
        return;
    }
    case CHR_TLS_HANDSHAKING:
        chr_tls_handshake(conn);
        return;
    default:
        if (conn->tls_read_wants_write) {
            conn->tls_read_wants_write = 0;
            chr_read(conn);
            if (conn->freed) return;
        }
        chr_tls_write(conn);
    }
}

ssize_t chr_tls_read(chr_io_conn *conn, char *buffer, size_t capacity) {
    ERR_clear_error();
    errno = 0;
    int count = SSL_read(conn->ssl, buffer, capacity > INT32_MAX ? INT32_MAX : (int)capacity);
    if (count > 0) return count;
    int ssl_error = SSL_get_error(conn->ssl, count);
    if (ssl_error == SSL_ERROR_WANT_READ) return 0;
    if (ssl_error == SSL_ERROR_WANT_WRITE) {
        conn->tls_read_wants_write = 1;
        chr_io_conn_arm_write(conn);
        return 0;
    }
    chr_tls_describe(conn, count, ssl_error, 0);
    chr_tls_fail(conn);
    return -1;
}
