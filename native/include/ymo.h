/* ymo: an HTTP/1.1 server whose I/O runs on a libev loop thread and whose
 * request handlers run on JavaScript threads (Deno or Bun, through FFI).
 *
 * This is the only header the FFI sees. Every function here is safe to call
 * from the thread named in its comment; nothing here takes a raw pointer into
 * an exchange, since JavaScript refers to exchanges by (id, generation).
 *
 * The design follows the "thread worker" of a C WSGI server, with JavaScript
 * in Python's place:
 *
 *  clients --TCP-- [ libev loop thread L ] --queue_in--> [ worker: JS thread ]
 *                    accept, read, parse     lock_in       ymo_worker_take()
 *                    write, timers           ready_in      handler(Request)
 *                          ^                                     |
 *                          +----- queue_out, lock_out <----------+
 *                                 ev_async event_out   ymo_worker_respond()
 */
#ifndef YMO_H
#define YMO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define YMO_EXTERN __declspec(dllexport)
#else
#define YMO_EXTERN __attribute__((visibility("default")))
#endif

/* Errors are negative values from this one table; 0 means success. The
 * numbers are the Linux errno values negated, so strerror-style messages and
 * errno from system calls map onto them without translation; failures that
 * no errno names (TLS setup) have ymo's own numbers, from -1000 down. */
#define YMO_ERRNO_MAP(X)                                     \
  X(EINVAL, -22, "invalid argument")                         \
  X(ENOMEM, -12, "out of memory")                            \
  X(EADDRINUSE, -98, "address already in use")               \
  X(EADDRNOTAVAIL, -99, "address not available")             \
  X(EACCES, -13, "permission denied")                        \
  X(ENOENT, -2, "no such exchange")                          \
  X(ESTALE, -116, "exchange already finished or abandoned")  \
  X(ESHUTDOWN, -108, "server is shut down")                  \
  X(EALREADY, -114, "operation already in progress")         \
  X(ENOBUFS, -105, "buffer too small")                       \
  X(EPIPE, -32, "client went away")                          \
  X(EAGAIN, -11, "try again")                                \
  X(ENOTCONN, -107, "server is not listening")                 \
  X(ETLS, -1000, "TLS setup failed")                            \
  X(ETLSCERT, -1001, "bad TLS certificate")                     \
  X(ETLSKEY, -1002, "bad TLS private key")                      \
  X(ETLSPASS, -1003, "wrong or missing TLS key passphrase")     \
  X(ETLSMISMATCH, -1004, "TLS private key does not match the certificate") \
  X(ETLSCA, -1005, "bad TLS CA certificate")

enum ymo_errno {
#define YMO__ERR_ENUM(name, value, text) YMO_##name = value,
  YMO_ERRNO_MAP(YMO__ERR_ENUM)
#undef YMO__ERR_ENUM
};

/* A static English message for an error code (or for 0), never NULL. */
YMO_EXTERN const char *ymo_strerror(int err);

/* The library's version as "MAJOR.MINOR.PATCH"; the TypeScript side checks
 * it against its own so a stale build is reported, not misused. */
YMO_EXTERN const char *ymo_version(void);

typedef struct ymo_server ymo_server_t;
typedef struct ymo_worker ymo_worker_t;
typedef struct ymo_exchange ymo_exchange_t;

/* ---------------------------------------------------------------------------
 * Server: one libev loop on its own pthread (L), a listening socket, and
 * n_workers workers. Created, configured and started from one JS thread.
 * ------------------------------------------------------------------------- */

/* Options set with ymo_server_set_option() before ymo_server_start(). */
#define YMO_OPTION_MAP(X)                                                   \
  /* listen(2) backlog. */                                                  \
  X(BACKLOG, 1, 511)                                                        \
  /* Largest request head (request line and headers), bytes: 431. */        \
  X(MAX_HEAD_SIZE, 2, 65536)                                                \
  /* Largest request body, bytes: 413. */                                   \
  X(MAX_BODY_SIZE, 3, 67108864)                                             \
  /* Longest request target, bytes: 414. */                                 \
  X(MAX_URL_SIZE, 4, 8192)                                                  \
  /* Most header fields in one request: 431. As Node's default; the head   \
   * size limit still bounds the memory they take. */                      \
  X(MAX_HEADERS, 5, 2000)                                                   \
  /* Idle time allowed on a keep-alive connection between requests, ms. */  \
  X(KEEPALIVE_TIMEOUT_MS, 6, 5000)                                          \
  /* Time allowed to receive a whole request head, then the longest gap    \
   * between two pieces of its body, ms: 408. */                           \
  X(HEADER_TIMEOUT_MS, 7, 10000)                                            \
  /* Most open connections; beyond it new ones are closed at accept. */     \
  X(MAX_CONNECTIONS, 8, 10000)                                              \
  /* Set SO_REUSEPORT on the listening socket (0 or 1). */                  \
  X(REUSE_PORT, 9, 0)                                                       \
  /* Most requests a connection may have waiting for their responses;      \
   * past it the server stops reading that connection until some finish. */ \
  X(MAX_PIPELINE, 10, 16)                                                   \
  /* Option 11 (STREAM_BODY_MIN) is gone: every request reaches JS as soon \
   * as its head is complete, its body whole only when it came in the same \
   * read (see YMO_REQF_STREAM). The number is not reused. */              \
  /* Compress responses (gzip, deflate, br) by the request's              \
   * Accept-Encoding, where the response allows it (0 or 1). */            \
  X(COMPRESSION, 12, 0)                                                     \
  /* WebSocket: the largest message, bytes (after inflating); a bigger one  \
   * closes the connection with 1009. As Bun's maxPayloadLength. */        \
  X(WS_MAX_MESSAGE, 13, 16777216)                                           \
  /* WebSocket: close a connection on which nothing was read for this      \
   * long, ms (0: never). As Bun's websocket idleTimeout (120 s). */       \
  X(WS_IDLE_TIMEOUT_MS, 14, 120000)                                         \
  /* WebSocket: when the idle timeout runs out, ping first and close only  \
   * if nothing comes back within another timeout (0 or 1; Bun's sendPings).*/\
  X(WS_SEND_PINGS, 15, 1)

enum ymo_option {
#define YMO__OPT_ENUM(name, value, dflt) YMO_OPT_##name = value,
  YMO_OPTION_MAP(YMO__OPT_ENUM)
#undef YMO__OPT_ENUM
};

/* Allocate a server with n_workers workers (1..256). Returns NULL on failure
 * with *err set. */
YMO_EXTERN ymo_server_t *ymo_server_create(int n_workers, int *err);

/* Set an option (enum ymo_option) before start. Negative values are
 * YMO_EINVAL; so is an unknown option. */
YMO_EXTERN int ymo_server_set_option(ymo_server_t *server, int option,
                                     int64_t value);

/* Bind and listen on host:port (port 0 picks a free port). Synchronous, on the
 * calling thread, before start, so errors come back at once. host is an IPv4
 * or IPv6 literal or a name resolved with getaddrinfo. */
YMO_EXTERN int ymo_server_listen(ymo_server_t *server, const char *host,
                                 int port);

/* Bind and listen on a unix domain socket at path, instead of host:port. A
 * stale socket file (one nobody accepts on) is replaced; a live socket, or a
 * file that is not a socket, is YMO_EADDRINUSE. The file gets the mode the
 * umask gives, and is removed when the server stops listening. */
YMO_EXTERN int ymo_server_listen_unix(ymo_server_t *server, const char *path);

/* Use an already-listening socket (for example from systemd's LISTEN_FDS)
 * instead of ymo_server_listen(). The server owns fd from now on. */
YMO_EXTERN int ymo_server_listen_fd(ymo_server_t *server, int fd);

/* The bound port (0 on a unix socket), or a negative error when not
 * listening. */
YMO_EXTERN int ymo_server_port(ymo_server_t *server);

/* The bound address as text ("127.0.0.1", "::", or a unix socket's path)
 * into buf (cap bytes, NUL terminated); returns its length or a negative
 * error. Useful for a socket given with ymo_server_listen_fd(). */
YMO_EXTERN int ymo_server_host(ymo_server_t *server, char *buf, int cap);

/* Route requests whose path matches `pattern` to JavaScript as route `id`
 * (0 to 65534): "/" then segments, each literal, a ":name" parameter (one
 * non-empty path segment) or, last, "*" (the rest of the path). `method`
 * (NUL-terminated) limits the route to one method, a GET route answering
 * HEAD too; NULL or "" takes any. L matches each request when its head is
 * complete: dot segments resolved and "\\" read as "/", literals before
 * parameters before wildcards segment by segment, the first added among
 * equals; the record then carries id + 1 and the parameters' values
 * (YMO_RECORD_MAP). A static route for the same target wins. Before start.
 * Returns 0, YMO_EINVAL for a bad pattern or id, YMO_EALREADY once
 * started. */
YMO_EXTERN int ymo_server_add_route(ymo_server_t *server, const char *pattern,
                                    const char *method, int32_t id);

/* Serve GET and HEAD requests for `path` (a NUL-terminated request target,
 * matched exactly, query included) from the loop thread itself, with a fixed
 * response: status, header lines ("Name: value\r\n" each, without Date,
 * Content-Length or Connection, which ymo adds) and body. JavaScript never
 * sees these requests. Before start; a later route for the same path wins. */
YMO_EXTERN int ymo_server_add_static(ymo_server_t *server, const char *path,
                                     int status, const uint8_t *headers,
                                     int32_t headers_len, const uint8_t *body,
                                     int32_t body_len);

/* Serve HTTPS: TLS 1.2 and 1.3 with OpenSSL on every connection of this
 * server. Adds a certificate (PEM; its intermediates may follow it) and its
 * private key (PEM, PKCS#8 or traditional, encrypted or not; passphrase is
 * NUL-terminated, or NULL) for server_name (NUL-terminated, "*.example.com"
 * matching one label; NULL or "" for the default). Clients are served the
 * certificate of the site their SNI names, else the default's: the first
 * site added without a name, else the first site added. A site may hold one
 * certificate per key type (RSA, ECDSA). Before start, before listening if
 * nothing may listen with a bad certificate. Returns 0, YMO_ETLSCERT (not a
 * PEM certificate, or refused: too weak a key), YMO_ETLSKEY (not a PEM
 * private key), YMO_ETLSPASS (the key is encrypted and the passphrase is
 * wrong or missing), YMO_ETLSMISMATCH (the key is not the certificate's),
 * YMO_EINVAL (a bad argument or server name), YMO_EALREADY once started,
 * YMO_ETLS or YMO_ENOMEM; ymo_server_tls_error() then has OpenSSL's words.
 * Any thread that configures the server. */
YMO_EXTERN int ymo_server_add_tls_cert(ymo_server_t *server,
                                       const uint8_t *cert, int32_t cert_len,
                                       const uint8_t *key, int32_t key_len,
                                       const char *passphrase,
                                       const char *server_name);

/* Add CA certificates (PEM, one or more) to server_name's site (as above;
 * added first with ymo_server_add_tls_cert): OpenSSL completes the chain it
 * sends from them when a certificate came without its intermediates.
 * Client certificates are not asked for. Before start. Returns 0,
 * YMO_ETLSCA, YMO_EINVAL (no such site), YMO_EALREADY or YMO_ENOMEM. */
YMO_EXTERN int ymo_server_add_tls_ca(ymo_server_t *server, const uint8_t *ca,
                                     int32_t ca_len, const char *server_name);

/* What OpenSSL said about the last failed ymo_server_add_tls_cert() or
 * ymo_server_add_tls_ca() call (NUL terminated into buf, cap bytes; "" when
 * it said nothing). Returns its length, or YMO_EINVAL. */
YMO_EXTERN int ymo_server_tls_error(ymo_server_t *server, char *buf, int cap);

/* Start the loop thread L. */
YMO_EXTERN int ymo_server_start(ymo_server_t *server);

/* Begin a graceful shutdown: L stops accepting at once, closes idle
 * connections, lets in-flight exchanges finish for up to grace_ms, then closes
 * the rest. When the last connection is gone, L stops its loop and releases
 * every worker's waiter (see ymo_worker_wait). Any thread; idempotent. */
YMO_EXTERN int ymo_server_shutdown(ymo_server_t *server, int grace_ms);

/* Stop now (shutdown with no grace) and join L. Safe to call more than once
 * and from exit handlers. After it returns, L runs no more code and calls no
 * callback. */
YMO_EXTERN int ymo_server_stop(ymo_server_t *server);

/* Free the server after ymo_server_stop(). Exchanges still held by JS are
 * released with it; their handles become stale. */
YMO_EXTERN void ymo_server_free(ymo_server_t *server);

/* Number of open connections (a snapshot; any thread). */
YMO_EXTERN int ymo_server_connections(ymo_server_t *server);

/* Worker i (0 <= i < n_workers), or NULL. The worker lives as long as the
 * server. */
YMO_EXTERN ymo_worker_t *ymo_server_worker(ymo_server_t *server, int i);

/* Serve leader's listener on one more loop: `shard`, a server of its own
 * (its options, routes, TLS and workers set by the caller like the
 * leader's) that does not listen; the leader accepts every connection and
 * deals them round-robin to itself and its shards, whose loop threads then
 * run them alone. With one worker each, every loop's JS thread can borrow
 * its own loop (ymo_worker_acquire_loop), so several threads serve one port
 * with no handoff between threads; a publish reaches one loop's
 * subscribers, so publish through a worker of each. maxConnections counts
 * the connections of all the loops; with TLS, a shard takes the leader's
 * session ticket keys when it starts, so a client resumes its session on
 * whichever loop it is dealt to. Both before either starts; shut down
 * and stop them all, the leader first, and free none before all are
 * stopped. Returns 0, YMO_EINVAL (a server that is a shard, has shards or
 * listens), YMO_EALREADY, YMO_ENOMEM. */
YMO_EXTERN int ymo_server_add_shard(ymo_server_t *leader, ymo_server_t *shard);

/* ---------------------------------------------------------------------------
 * Worker: the original's thread worker. In the WSGI server it owned a Python
 * thread; here its "thread" is whichever JavaScript thread (the main isolate
 * or a Web Worker) drives it with the calls below. Exactly one JS thread may
 * drive a worker; L never calls into JavaScript except through the notify
 * callback, which only schedules work.
 * ------------------------------------------------------------------------- */

/* Callback type for ymo_worker_set_notify(). Called by L with 0 when queue_in
 * goes from empty to non-empty, and with 1 once when the worker is released
 * for good (server stopped). Must not block. */
typedef void (*ymo_notify_fn)(int32_t event);

/* Mark the worker as driven by a JS thread ("start" in the original, which
 * spawned the Python thread): from now on L hands it exchanges. */
YMO_EXTERN int ymo_worker_start(ymo_worker_t *worker);

/* Install (or with NULL, remove) the notify callback, under lock_in: once this
 * returns, L will not call the previous callback again. If the worker's
 * waiters were already released (the server stopped), the new callback is
 * called with 1 at once. For Bun's threadsafe JSCallback. */
YMO_EXTERN int ymo_worker_set_notify(ymo_worker_t *worker, ymo_notify_fn fn);

/* Block until queue_in is non-empty, the worker is woken by
 * ymo_worker_wake(), or the server is stopped. Returns the number of queued
 * exchanges (> 0), 0 when woken with nothing queued, or YMO_ESHUTDOWN. For
 * Deno's nonblocking FFI calls (one waiter per worker at most). */
YMO_EXTERN int ymo_worker_wait(ymo_worker_t *worker);

/* Make a pending or the next ymo_worker_wait() return 0 ("notify" in the
 * original woke the Python thread the same way). Any thread. */
YMO_EXTERN int ymo_worker_notify(ymo_worker_t *worker);

/* Copy as many queued requests as fit into buf (cap bytes) and hand their
 * exchanges to the caller. Returns the number of bytes written (0 when the
 * queue is empty), or -(bytes needed) (always < -1) when not even the first
 * request fits: grow the buffer and call again. The byte format is in
 * ffi/codec.ts and below (YMO_RECORD_MAP). JS thread only. */
YMO_EXTERN int32_t ymo_worker_take(ymo_worker_t *worker, uint8_t *buf,
                                   int32_t cap);

/* Begin and end a batch: the takes and the handlers that run on them. For
 * the batch's first millisecond, responses and publishes queue without
 * waking L, which drains them together once it ends, instead of waking for
 * the first and writing it alone; after that they wake L as they come, so
 * slow handlers do not hold back the first answers. End every batch begun,
 * whether the handlers threw or not. JS thread only; both return 0. */
YMO_EXTERN int ymo_worker_begin_batch(ymo_worker_t *worker);
YMO_EXTERN int ymo_worker_end_batch(ymo_worker_t *worker);

/* Flags for ymo_worker_respond() and ymo_worker_response_body_append(). */
#define YMO_RESP_DONE 1   /* The body is complete after this call. */
#define YMO_RESP_CLOSE 2  /* Close the connection after this response. */
/* The header lines carry the app's own Content-Length, and ymo adds none.
 * Honoured only with YMO_RESP_DONE in the response to a HEAD request (RFC
 * 9110 section 9.3.2: the length a GET would have had); anywhere else ymo's
 * own framing wins and the flag is ignored, since there a Content-Length
 * from the app could disagree with the bytes sent. */
#define YMO_RESP_OWN_LENGTH 4

/* Start the response of exchange (id, gen): status code, header lines
 * ("Name: value\r\n" each, already validated; no Date, Content-Length,
 * Transfer-Encoding or Connection, which ymo adds), and the first part of the
 * body. With YMO_RESP_DONE the body is complete and sent with Content-Length;
 * without it the body is streamed (chunked for HTTP/1.1, close-delimited for
 * 1.0) through ymo_worker_response_body_append(). JS thread only.
 * Returns 0, YMO_ESTALE for an unknown or finished handle, YMO_EPIPE when the
 * client is gone (the exchange is then released when done is set). */
YMO_EXTERN int ymo_worker_respond(ymo_worker_t *worker, uint32_t id,
                                  uint32_t gen, int status,
                                  const uint8_t *headers, int32_t headers_len,
                                  const uint8_t *body, int32_t body_len,
                                  int flags);

/* Answer exchange (id, gen) with ymo's standard plain-text page for status:
 * the reason phrase as the body, "Content-Type: text/plain;charset=UTF-8",
 * the same bytes as the server's own error pages. flags as for
 * ymo_worker_respond() (YMO_RESP_CLOSE is honoured); the response is always
 * complete. JS thread only. Returns as ymo_worker_respond(). */
YMO_EXTERN int ymo_worker_respond_canned(ymo_worker_t *worker, uint32_t id,
                                         uint32_t gen, int status, int flags);

/* Append a chunk to a streamed response; with YMO_RESP_DONE it is the last.
 * Returns the number of response bytes queued for this connection and not yet
 * written, or a negative error as for respond. Above YMO_RESP_HIGH_WATER the
 * caller should stop producing until a drain record (YMO_REQF_DRAIN) for the
 * exchange comes out of ymo_worker_take(). */
YMO_EXTERN int32_t ymo_worker_response_body_append(ymo_worker_t *worker,
                                                   uint32_t id, uint32_t gen,
                                                   const uint8_t *body,
                                                   int32_t body_len,
                                                   int flags);

/* Tell the server that JS has read `bytes` more of exchange (id, gen)'s
 * streamed request body, so it may read more from the client. JS thread
 * only. Returns 0 or YMO_ESTALE. */
/* Bun's server.timeout(request, seconds): while exchange (id, gen) is the
 * one its connection is answering, close the connection when no byte moves
 * on it for ms milliseconds (0: never, the default). JS thread only.
 * Returns 0, YMO_ESTALE, YMO_EINVAL for ms < 0, or YMO_ENOMEM. */
YMO_EXTERN int ymo_worker_set_timeout(ymo_worker_t *worker, uint32_t id,
                                      uint32_t gen, int32_t ms);

YMO_EXTERN int ymo_worker_body_ack(ymo_worker_t *worker, uint32_t id,
                                   uint32_t gen, int32_t bytes);

/* Give up an exchange without (finishing) a response: the connection gets a
 * 500 if nothing was sent yet, or is closed. JS thread only. */
YMO_EXTERN int ymo_worker_release(ymo_worker_t *worker, uint32_t id,
                                  uint32_t gen);

/* 1 if the client of exchange (id, gen) has gone away, 0 if not, negative if
 * the handle is stale. JS thread only. */
YMO_EXTERN int ymo_worker_aborted(ymo_worker_t *worker, uint32_t id,
                                  uint32_t gen);

/* ---------------------------------------------------------------------------
 * WebSocket (RFC 6455). A request record with YMO_REQF_UPGRADE is a valid
 * opening handshake (GET, HTTP/1.1, Upgrade: websocket, Connection: upgrade,
 * Sec-WebSocket-Version: 13, a well-formed Sec-WebSocket-Key); one that asks
 * for WebSocket with another version is answered 426 by L and never reaches
 * JS. Accepting it turns the exchange into the socket's handle: its messages
 * come out of ymo_worker_take() as body records with YMO_REQF_UPGRADE, and
 * when the connection ends (after a close handshake or not) an abort record
 * says so; then ymo_worker_release() gives the handle back.
 * ------------------------------------------------------------------------- */

/* ymo_worker_ws_accept() flags: negotiate permessage-deflate (RFC 7692) when
 * the client offers it. */
#define YMO_WS_DEFLATE 1
/* ymo_worker_ws_send() flags: compress this message, when the connection
 * negotiated permessage-deflate. */
#define YMO_WS_COMPRESS 1

/* Accept exchange (id, gen)'s opening handshake: L answers "101 Switching
 * Protocols" with Upgrade, Connection and Sec-WebSocket-Accept, the
 * negotiated Sec-WebSocket-Extensions, and the caller's header lines
 * ("Name: value\r\n" each: Sec-WebSocket-Protocol, say), then speaks
 * WebSocket on the connection, bytes the client sent after its handshake
 * included. JS thread only. Returns 0, YMO_ESTALE, YMO_EINVAL when the
 * request is no handshake or was answered, YMO_EPIPE when the client is gone,
 * or YMO_ENOMEM. */
YMO_EXTERN int ymo_worker_ws_accept(ymo_worker_t *worker, uint32_t id,
                                    uint32_t gen, const uint8_t *headers,
                                    int32_t headers_len, int flags);

/* Send one message on the WebSocket of exchange (id, gen): opcode 1 (text,
 * which the caller has made valid UTF-8), 2 (binary), 9 (ping) or 10 (pong;
 * both at most 125 bytes). Returns the bytes queued for the connection and
 * not yet written (above YMO_RESP_HIGH_WATER a drain record follows once
 * they are down to YMO_RESP_LOW_WATER), or YMO_ESTALE, YMO_EINVAL (a bad
 * opcode or length, or not a WebSocket), YMO_EPIPE (the socket is closing or
 * gone), YMO_ENOMEM. JS thread only. */
YMO_EXTERN int32_t ymo_worker_ws_send(ymo_worker_t *worker, uint32_t id,
                                      uint32_t gen, int opcode,
                                      const uint8_t *data, int32_t len,
                                      int flags);

/* Start the closing handshake: a close frame with code (0 for none) and
 * reason (UTF-8, cut to fit 123 bytes); L closes the connection when the
 * client answers, or after a few seconds. Nothing more may be sent. Returns
 * 0, YMO_ESTALE, YMO_EINVAL (a code that may not be sent, or a reason that
 * is not UTF-8), YMO_EPIPE when it is closing already or gone. JS thread
 * only. */
YMO_EXTERN int ymo_worker_ws_close(ymo_worker_t *worker, uint32_t id,
                                   uint32_t gen, int code,
                                   const uint8_t *reason, int32_t reason_len);

/* Pub/sub. A topic is 1 to 65535 bytes. A socket's subscriptions are kept
 * by L for the whole server, so a publish from any worker (or from
 * ymo_server_publish) reaches every subscriber on every worker: L frames
 * nothing again, it copies the one frame behind each subscriber's output.
 * Subscriptions end with the socket. */

/* Subscribe (subscribe != 0) or unsubscribe the WebSocket of exchange (id,
 * gen) to topic; in order with what the socket sends. Returns 0,
 * YMO_ESTALE, YMO_EINVAL, YMO_EPIPE, YMO_ENOMEM. JS thread only. */
YMO_EXTERN int ymo_worker_ws_subscribe(ymo_worker_t *worker, uint32_t id,
                                       uint32_t gen, const uint8_t *topic,
                                       int32_t topic_len, int subscribe);

/* ymo_worker_ws_publish() flags: the publishing socket gets it too. */
#define YMO_WS_PUBLISH_SELF 1

/* Publish a message (opcode 1 text, 2 binary) to topic's subscribers, all
 * but the WebSocket of exchange (id, gen) itself unless flags has
 * YMO_WS_PUBLISH_SELF. Returns len, or YMO_ESTALE, YMO_EINVAL, YMO_EPIPE,
 * YMO_ENOMEM. JS thread only. */
YMO_EXTERN int32_t ymo_worker_ws_publish(ymo_worker_t *worker, uint32_t id,
                                         uint32_t gen, const uint8_t *topic,
                                         int32_t topic_len, int opcode,
                                         const uint8_t *data, int32_t len,
                                         int flags);

/* Publish a message to every subscriber of topic (Bun's server.publish),
 * through worker's queue to L: any thread, any of the server's workers.
 * Returns len, or YMO_EINVAL, YMO_ENOMEM, YMO_ESHUTDOWN. */
YMO_EXTERN int32_t ymo_worker_publish(ymo_worker_t *worker,
                                      const uint8_t *topic, int32_t topic_len,
                                      int opcode, const uint8_t *data,
                                      int32_t len);

/* Detach the driving JS thread: release the waiter, stop calling notify, and
 * answer the exchanges it holds with 503, or close their connections when a
 * response was already started ("join" in the original joined the Python
 * thread; the JS thread ends on its own). Queued requests wait for the next
 * ymo_worker_start(). Call it on the thread that drove the worker, or once
 * that thread is gone for good; idempotent. */
YMO_EXTERN int ymo_worker_join(ymo_worker_t *worker);

/* The loan of the loop. While it is busy, the JS thread of a server's only
 * worker may run the server's loop itself, so a request is read, handled
 * and answered on one thread; L waits meanwhile, and takes the loop back if
 * the JS thread stops polling for 10 ms (a handler stuck in synchronous
 * code). All JS thread only; none blocks but acquire, for at most 2 ms.
 *
 * ymo_worker_acquire_loop: asks L for the loop and waits up to 2 ms for it.
 * 1 when this thread owns the loop, 0 when L has not handed it over yet
 * (call again later), YMO_EALREADY when this server does not lend
 * its loop (several workers, or YMO_NO_LOAN=1 in the environment when the
 * server started), YMO_ESHUTDOWN once the server is shutting down. */
YMO_EXTERN int ymo_worker_acquire_loop(ymo_worker_t *worker);

/* One pass of the owned loop that does not wait: writes what queue_out holds,
 * reads what the sockets have, runs timers. Returns how many items queue_in
 * holds for ymo_worker_take(), YMO_EAGAIN when this thread does not own the
 * loop (L took it back: acquire it again), or YMO_ESHUTDOWN (the loop went
 * back to L, which finishes the shutdown). */
YMO_EXTERN int ymo_worker_poll(ymo_worker_t *worker);

/* One pass of the owned loop that waits for an event (a request, a socket
 * to write, a timer) up to timeout_us (at most 2000; epoll rounds it up to
 * whole milliseconds). For a JS thread with nothing else to do: it sleeps
 * in epoll instead of spinning through passes that find nothing, while its
 * runtime's own timers and I/O wait. Returns as ymo_worker_poll(), or
 * YMO_EINVAL for a timeout out of range. */
YMO_EXTERN int ymo_worker_nap(ymo_worker_t *worker, int32_t timeout_us);

/* Writes what queue_out holds now, on the owned loop (the responses a batch
 * just made). Returns as ymo_worker_poll(). */
YMO_EXTERN int ymo_worker_flush(ymo_worker_t *worker);

/* Gives the loop back to L, or withdraws a request for it. Idempotent. */
YMO_EXTERN int ymo_worker_release_loop(ymo_worker_t *worker);

/* Wire format of one request record written by ymo_worker_take(), all
 * integers little-endian: the fixed part laid out by YMO_RECORD_MAP below
 * (YMO_REQ_FIXED_SIZE bytes), then
 *   method bytes, url bytes,
 *   n_headers x (u32 name_len, u32 value_len, name bytes, value bytes),
 *   n_params x (u32 0, u32 value_len, value bytes): the route's parameter
 *     values in the pattern's order, raw from the path (headers_len counts
 *     these entries too),
 *   body bytes
 * then zero padding to a multiple of 8.
 *
 * YMO_RECORD_MAP is the one table of the fields' places: X(name, offset,
 * width in bytes). The C writer and reader use it through YMO_REQ_AT_* and
 * YMO_REQ_WIDTH_*; ffi/codec.ts keeps the same table, and
 * tests/symbols_test.ts checks the two against each other. */
#define YMO_RECORD_MAP(X)                                                  \
  /* Every record: whole length (this field included, padded to 8), */     \
  X(record_len, 0, 4)                                                      \
  /* the exchange handle, */                                               \
  X(id, 4, 4)                                                              \
  X(gen, 8, 4)                                                             \
  /* the request's HTTP version, and YMO_REQF_* flags. */                  \
  X(http_major, 12, 1)                                                     \
  X(http_minor, 13, 1)                                                     \
  X(flags, 14, 1)                                                          \
  /* Request records only: the lengths of what follows the fixed part, */  \
  X(method_len, 15, 1)                                                     \
  X(url_len, 16, 4)                                                        \
  X(n_headers, 20, 4)                                                      \
  X(headers_len, 24, 4)                                                    \
  X(body_len, 28, 4)                                                       \
  /* and the client's address: port, family (4 or 6), a reserved byte, */ \
  X(remote_port, 32, 2)                                                    \
  X(remote_family, 34, 1)                                                  \
  X(reserved, 35, 1)                                                       \
  X(remote_addr, 36, 16)                                                   \
  /* and the dynamic route matched (its id + 1, or 0) with the number of */ \
  /* parameter entries that follow the header entries (see below). */      \
  X(route, 52, 2)                                                          \
  X(n_params, 54, 1)                                                       \
  X(reserved2, 55, 1)                                                      \
  /* Body records: the zero padding after the data, in method_len's */    \
  /* place (the data is record_len - YMO_REQ_ABORT_SIZE - padding). */    \
  X(body_padding, 15, 1)                                                   \
  /* Each header entry, counted from the entry's own start. */             \
  X(field_name_len, 0, 4)                                                  \
  X(field_value_len, 4, 4)

enum ymo_record_field {
#define YMO__REC_AT(name, offset, width) YMO_REQ_AT_##name = offset,
  YMO_RECORD_MAP(YMO__REC_AT)
#undef YMO__REC_AT
};

enum ymo_record_width {
#define YMO__REC_WIDTH(name, offset, width) YMO_REQ_WIDTH_##name = width,
  YMO_RECORD_MAP(YMO__REC_WIDTH)
#undef YMO__REC_WIDTH
};

#define YMO_REQ_FIXED_SIZE 56
/* The two lengths that open each header entry. */
#define YMO_REQ_FIELD_SIZE 8
#define YMO_REQF_KEEPALIVE 1
#define YMO_REQF_HEAD 2
/* An abort record: 16 bytes (record_len, id, gen, the four u8 fields) telling
 * that the client of an exchange the caller holds has gone away. */
#define YMO_REQF_ABORT 4
#define YMO_REQ_ABORT_SIZE 16
/* A drain record, of the same shape: a streamed response whose append
 * returned more than YMO_RESP_HIGH_WATER (a WebSocket whose send returned
 * more than YMO_WS_HIGH_WATER) has been written down to YMO_RESP_LOW_WATER;
 * the producer may go on. */
#define YMO_REQF_DRAIN 8
/* A request record whose body is not complete: the rest comes in body
 * records. A body record is a 16-byte record of the same shape with
 * YMO_REQF_BODY in its flags (and YMO_REQF_END on the last one), followed by
 * the bytes; its u8 method_len field holds the padding, so the data is
 * record_len - 16 - padding bytes. Read bytes are handed back with
 * ymo_worker_body_ack(): while more than YMO_BODY_HIGH_WATER are unread the
 * server stops reading that connection. */
#define YMO_REQF_STREAM 16
#define YMO_REQF_BODY 32
#define YMO_REQF_END 64
/* On a request record: a WebSocket opening handshake (ymo_worker_ws_accept).
 * On a body record: a WebSocket message for the exchange, whose opcode (1
 * text, 2 binary, 8 close, 9 ping, 10 pong) is in http_minor's place; a
 * close carries its code (2 bytes, big-endian; none for 1005) and reason.
 * Messages are acknowledged with ymo_worker_body_ack() like body pieces. */
#define YMO_REQF_UPGRADE 128
#define YMO_BODY_HIGH_WATER (1024 * 1024)
#define YMO_BODY_LOW_WATER (256 * 1024)
/* A streamed response holds at most about YMO_RESP_HIGH_WATER unwritten
 * bytes in C before its producer waits: the socket's own buffer holds the
 * rest. At 256 KiB, 256 connections streaming kept 64 MiB of pieces in
 * flight and cost twice the CPU per response of 64 KiB (stream workload).
 * A WebSocket connection queues up to YMO_WS_HIGH_WATER before it asks for
 * a drain record (Bun's drain event). Both drain down to YMO_RESP_LOW_WATER. */
#define YMO_RESP_HIGH_WATER (64 * 1024)
#define YMO_RESP_LOW_WATER (16 * 1024)
#define YMO_WS_HIGH_WATER (256 * 1024)

#ifdef __cplusplus
}
#endif

#endif /* YMO_H */
