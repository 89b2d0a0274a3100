/**
 * The one table of the native library's symbols, in Deno's FFI format. The
 * Bun backend translates it mechanically (see `bun.ts`); `tests/symbols_test.ts`
 * checks it against `native/include/ymo.h` so the two cannot drift.
 *
 * Lengths cross as `i32`: no single buffer handed to or from C is anywhere
 * near 2 GiB, and 32-bit integers stay plain numbers on both runtimes.
 * Callbacks cross as `pointer` because Bun's `"function"` type rejects `null`.
 *
 * @module
 */

export const symbols = {
  /** const char *ymo_strerror(int err) */
  ymo_strerror: { parameters: ["i32"], result: "pointer" },
  /** const char *ymo_version(void) */
  ymo_version: { parameters: [], result: "pointer" },

  /** ymo_server_t *ymo_server_create(int n_workers, int *err) */
  ymo_server_create: { parameters: ["i32", "buffer"], result: "pointer" },
  /** int ymo_server_set_option(ymo_server_t *server, int option, int64_t value) */
  ymo_server_set_option: {
    parameters: ["pointer", "i32", "i64"],
    result: "i32",
  },
  /** int ymo_server_listen(ymo_server_t *server, const char *host, int port) */
  ymo_server_listen: {
    parameters: ["pointer", "buffer", "i32"],
    result: "i32",
  },
  /** int ymo_server_listen_unix(ymo_server_t *server, const char *path) */
  ymo_server_listen_unix: { parameters: ["pointer", "buffer"], result: "i32" },
  /** int ymo_server_listen_fd(ymo_server_t *server, int fd) */
  ymo_server_listen_fd: { parameters: ["pointer", "i32"], result: "i32" },
  /** int ymo_server_port(ymo_server_t *server) */
  ymo_server_port: { parameters: ["pointer"], result: "i32" },
  /** int ymo_server_host(ymo_server_t *server, char *buf, int cap) */
  ymo_server_host: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  /** int ymo_server_add_route(ymo_server_t *server, const char *pattern,
   *   const char *method, int32_t id) */
  ymo_server_add_route: {
    parameters: ["pointer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  /** int ymo_server_add_static(ymo_server_t *server, const char *path,
   *   int status, const uint8_t *headers, int32_t headers_len,
   *   const uint8_t *body, int32_t body_len) */
  ymo_server_add_static: {
    parameters: ["pointer", "buffer", "i32", "buffer", "i32", "buffer", "i32"],
    result: "i32",
  },
  /** int ymo_server_add_tls_cert(ymo_server_t *server, const uint8_t *cert,
   *   int32_t cert_len, const uint8_t *key, int32_t key_len,
   *   const char *passphrase, const char *server_name) */
  ymo_server_add_tls_cert: {
    parameters: [
      "pointer",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  /** int ymo_server_add_tls_ca(ymo_server_t *server, const uint8_t *ca,
   *   int32_t ca_len, const char *server_name) */
  ymo_server_add_tls_ca: {
    parameters: ["pointer", "buffer", "i32", "buffer"],
    result: "i32",
  },
  /** int ymo_server_tls_error(ymo_server_t *server, char *buf, int cap) */
  ymo_server_tls_error: {
    parameters: ["pointer", "buffer", "i32"],
    result: "i32",
  },
  /** int ymo_server_start(ymo_server_t *server) */
  ymo_server_start: { parameters: ["pointer"], result: "i32" },
  /** int ymo_server_shutdown(ymo_server_t *server, int grace_ms) */
  ymo_server_shutdown: { parameters: ["pointer", "i32"], result: "i32" },
  /** int ymo_server_stop(ymo_server_t *server) */
  ymo_server_stop: { parameters: ["pointer"], result: "i32" },
  /** void ymo_server_free(ymo_server_t *server) */
  ymo_server_free: { parameters: ["pointer"], result: "void" },
  /** int ymo_server_connections(ymo_server_t *server) */
  ymo_server_connections: { parameters: ["pointer"], result: "i32" },
  /** ymo_worker_t *ymo_server_worker(ymo_server_t *server, int i) */
  ymo_server_worker: { parameters: ["pointer", "i32"], result: "pointer" },
  /** int ymo_server_add_shard(ymo_server_t *leader, ymo_server_t *shard) */
  ymo_server_add_shard: { parameters: ["pointer", "pointer"], result: "i32" },

  /** int ymo_worker_start(ymo_worker_t *worker) */
  ymo_worker_start: { parameters: ["pointer"], result: "i32" },
  /** int ymo_worker_set_notify(ymo_worker_t *worker, ymo_notify_fn fn) */
  ymo_worker_set_notify: { parameters: ["pointer", "pointer"], result: "i32" },
  /** int ymo_worker_wait(ymo_worker_t *worker): blocks, so Deno runs it off
   * the JS thread; Bun has no such calls and uses the notify callback. */
  ymo_worker_wait: {
    parameters: ["pointer"],
    result: "i32",
    nonblocking: true,
  },
  /** int ymo_worker_notify(ymo_worker_t *worker) */
  ymo_worker_notify: { parameters: ["pointer"], result: "i32" },
  /** int32_t ymo_worker_take(ymo_worker_t *worker, uint8_t *buf, int32_t cap) */
  ymo_worker_take: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  /** int ymo_worker_begin_batch(ymo_worker_t *worker) */
  ymo_worker_begin_batch: { parameters: ["pointer"], result: "i32" },
  /** int ymo_worker_end_batch(ymo_worker_t *worker) */
  ymo_worker_end_batch: { parameters: ["pointer"], result: "i32" },
  /** int ymo_worker_respond(ymo_worker_t *worker, uint32_t id, uint32_t gen,
   *   int status, const uint8_t *headers, int32_t headers_len,
   *   const uint8_t *body, int32_t body_len, int flags) */
  ymo_worker_respond: {
    parameters: [
      "pointer",
      "u32",
      "u32",
      "i32",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  /** int ymo_worker_respond_canned(ymo_worker_t *worker, uint32_t id,
   *   uint32_t gen, int status, int flags) */
  ymo_worker_respond_canned: {
    parameters: ["pointer", "u32", "u32", "i32", "i32"],
    result: "i32",
  },
  /** int32_t ymo_worker_response_body_append(ymo_worker_t *worker,
   *   uint32_t id, uint32_t gen, const uint8_t *body, int32_t body_len,
   *   int flags) */
  ymo_worker_response_body_append: {
    parameters: ["pointer", "u32", "u32", "buffer", "i32", "i32"],
    result: "i32",
  },
  /** int ymo_worker_set_timeout(ymo_worker_t *worker, uint32_t id,
   *   uint32_t gen, int32_t ms) */
  ymo_worker_set_timeout: {
    parameters: ["pointer", "u32", "u32", "i32"],
    result: "i32",
  },
  /** int ymo_worker_body_ack(ymo_worker_t *worker, uint32_t id, uint32_t gen,
   *   int32_t bytes) */
  ymo_worker_body_ack: {
    parameters: ["pointer", "u32", "u32", "i32"],
    result: "i32",
  },
  /** int ymo_worker_release(ymo_worker_t *worker, uint32_t id, uint32_t gen) */
  ymo_worker_release: { parameters: ["pointer", "u32", "u32"], result: "i32" },
  /** int ymo_worker_aborted(ymo_worker_t *worker, uint32_t id, uint32_t gen) */
  ymo_worker_aborted: { parameters: ["pointer", "u32", "u32"], result: "i32" },
  /** int ymo_worker_join(ymo_worker_t *worker) */
  ymo_worker_join: { parameters: ["pointer"], result: "i32" },
  /** int ymo_worker_acquire_loop(ymo_worker_t *worker) */
  ymo_worker_acquire_loop: { parameters: ["pointer"], result: "i32" },
  /** int ymo_worker_poll(ymo_worker_t *worker) */
  ymo_worker_poll: { parameters: ["pointer"], result: "i32" },
  /** int ymo_worker_nap(ymo_worker_t *worker, int32_t timeout_us) */
  ymo_worker_nap: { parameters: ["pointer", "i32"], result: "i32" },
  /** int ymo_worker_flush(ymo_worker_t *worker) */
  ymo_worker_flush: { parameters: ["pointer"], result: "i32" },
  /** int ymo_worker_release_loop(ymo_worker_t *worker) */
  ymo_worker_release_loop: { parameters: ["pointer"], result: "i32" },
  /** int ymo_worker_ws_accept(ymo_worker_t *worker, uint32_t id,
   *   uint32_t gen, const uint8_t *headers, int32_t headers_len, int flags) */
  ymo_worker_ws_accept: {
    parameters: ["pointer", "u32", "u32", "buffer", "i32", "i32"],
    result: "i32",
  },
  /** int32_t ymo_worker_ws_send(ymo_worker_t *worker, uint32_t id,
   *   uint32_t gen, int opcode, const uint8_t *data, int32_t len, int flags) */
  ymo_worker_ws_send: {
    parameters: ["pointer", "u32", "u32", "i32", "buffer", "i32", "i32"],
    result: "i32",
  },
  /** int ymo_worker_ws_subscribe(ymo_worker_t *worker, uint32_t id,
   *   uint32_t gen, const uint8_t *topic, int32_t topic_len, int subscribe) */
  ymo_worker_ws_subscribe: {
    parameters: ["pointer", "u32", "u32", "buffer", "i32", "i32"],
    result: "i32",
  },
  /** int32_t ymo_worker_ws_publish(ymo_worker_t *worker, uint32_t id,
   *   uint32_t gen, const uint8_t *topic, int32_t topic_len, int opcode,
   *   const uint8_t *data, int32_t len, int flags) */
  ymo_worker_ws_publish: {
    parameters: [
      "pointer",
      "u32",
      "u32",
      "buffer",
      "i32",
      "i32",
      "buffer",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  /** int32_t ymo_worker_publish(ymo_worker_t *worker, const uint8_t *topic,
   *   int32_t topic_len, int opcode, const uint8_t *data, int32_t len) */
  ymo_worker_publish: {
    parameters: ["pointer", "buffer", "i32", "i32", "buffer", "i32"],
    result: "i32",
  },
  /** int ymo_worker_ws_close(ymo_worker_t *worker, uint32_t id, uint32_t gen,
   *   int code, const uint8_t *reason, int32_t reason_len) */
  ymo_worker_ws_close: {
    parameters: ["pointer", "u32", "u32", "i32", "buffer", "i32"],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** Values of `enum ymo_option` in ymo.h. */
export const Option = {
  BACKLOG: 1,
  MAX_HEAD_SIZE: 2,
  MAX_BODY_SIZE: 3,
  MAX_URL_SIZE: 4,
  MAX_HEADERS: 5,
  KEEPALIVE_TIMEOUT_MS: 6,
  HEADER_TIMEOUT_MS: 7,
  MAX_CONNECTIONS: 8,
  REUSE_PORT: 9,
  MAX_PIPELINE: 10,
  COMPRESSION: 12,
  WS_MAX_MESSAGE: 13,
  WS_IDLE_TIMEOUT_MS: 14,
  WS_SEND_PINGS: 15,
} as const;

/** ymo_worker_ws_accept() flags: negotiate permessage-deflate. */
export const WS_DEFLATE = 1;
/** ymo_worker_ws_send() flags: compress this message when negotiated. */
export const WS_COMPRESS = 1;
/** ymo_worker_ws_publish() flags: the publishing socket gets it too. */
export const WS_PUBLISH_SELF = 1;

/** Flags of ymo_worker_respond() and ymo_worker_response_body_append(). */
export const RESP_DONE = 1;
export const RESP_CLOSE = 2;
/** With RESP_DONE on a HEAD request's response: the header lines carry the
 * app's Content-Length, and ymo adds none. Ignored otherwise. */
export const RESP_OWN_LENGTH = 4;

/** Error codes from ymo.h (negated Linux errno values). */
export const ESHUTDOWN = -108;
export const ESTALE = -116;
export const EPIPE = -32;
export const EAGAIN = -11;
export const EALREADY = -114;
export const EINVAL = -22;
/** ymo's own codes for TLS setup (ymo.h, YMO_ERRNO_MAP). */
export const ETLS = -1000;
export const ETLSCERT = -1001;
export const ETLSKEY = -1002;
export const ETLSPASS = -1003;
export const ETLSMISMATCH = -1004;
export const ETLSCA = -1005;
