/* Layer 2: the exchange (one request and its response, reference counted),
 * the output pieces that carry response bytes to L with their pool of
 * spares (exchange.c), and the writer of request records (record.c), whose
 * field offsets come from YMO_RECORD_MAP in ymo.h.
 *
 * This layer carries pointers to a worker and a connection but never looks
 * inside them: the layers above own those structs. */
#ifndef YMO_EXCHANGE_H
#define YMO_EXCHANGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base.h"

/* The connection an exchange arrived on (layer 5). */
typedef struct ymo_session ymo_session_t;

/* ---------------------------------------------------------------------------
 * Output: one piece of response bytes on its way from a JS thread to L, and
 * then, on L, in its exchange's list of bytes to write.
 * ------------------------------------------------------------------------- */
/* Internal flags on an output piece, beside YMO_RESP_DONE and _CLOSE:
 * ABORT closes the connection without finishing the response; RESUME
 * carries no bytes and asks L to read the connection's body again. */
#define YMO__OUT_ABORT 64
#define YMO__OUT_RESUME 128
/* Not data: the exchange's in-flight idle timeout, in ms, is out->off. */
#define YMO__OUT_TIMEOUT 256

typedef struct ymo_out_pool ymo_out_pool_t;

typedef struct ymo_out {
  struct ymo_out *next;  /* L only: the exchange's pending-write list. */
  ymo_exchange_t *exchange;
  ymo_out_pool_t *pool;  /* The spares it returns to, or NULL. */
  int flags;             /* YMO_RESP_DONE, YMO_RESP_CLOSE. */
  size_t len;
  size_t cap;            /* Room in data (at least len). */
  size_t off;            /* L only: bytes already written. */
  uint8_t data[];
} ymo_out_t;

/* Spare output pieces, reused instead of a malloc and free per response:
 * glibc gives memory freed at the top of the heap back to the system, so
 * 16 KiB bodies allocated on a JS thread and freed on L made the heap shrink
 * and grow, page faults included, on every request. Each worker embeds two
 * pools for its responses, one per size class; L has one for the WebSocket
 * frames it queues itself. Pieces have room for `piece` bytes; up to `max`
 * are kept. A piece too large for a pool comes from `larger`, if any. When
 * several threads use the pool, *lock (its owner's choice) is held around
 * the list operations here; a pool of one thread has none. */
struct ymo_out_pool {
  pthread_mutex_t *lock; /* Or NULL. */
  size_t piece, max;
  ymo_out_pool_t *larger; /* Or NULL. */
  ymo_out_t *spare;
  size_t n_spare;
};

void ymo__out_pool_init(ymo_out_pool_t *pool, pthread_mutex_t *lock,
                        size_t piece, size_t max, ymo_out_pool_t *larger);
/* Frees the spares; only once no thread can use the pool any more. */
void ymo__out_pool_destroy(ymo_out_pool_t *pool);

/* State that a layer above hangs on an exchange, freed with it by its own
 * function (this layer does not know what it is). */
typedef struct ymo_attachment {
  void (*free)(struct ymo_attachment *self);
} ymo_attachment_t;

/* ---------------------------------------------------------------------------
 * Exchange: one request and its response.
 *
 * Ownership: `refs` counts holders. L creates it with one reference, held by
 * its session's FIFO until the response is written or the connection closes.
 * queue_in holds one while queued; ymo_worker_take() moves that reference to
 * the worker's slot table (the JS side's handle). Each ymo_out_t holds one
 * until L has processed it. Whoever drops the count to zero frees it, on any
 * thread: by then no other holder exists.
 * ------------------------------------------------------------------------- */
struct ymo_exchange {
  atomic_int refs;
  /* Set by L when the client is gone; read by the JS thread. */
  atomic_int aborted;
  ymo_worker_t *worker;
  /* Where its output pieces come from and go back to (the worker's), or
   * NULL for plain malloc. Set at creation, never changed. */
  ymo_out_pool_t *spares;

  /* L only. */
  ymo_session_t *session; /* NULL once the connection has closed. */
  ymo_exchange_t *fifo_next;
  ymo_out_t *out_head, *out_tail;
  bool response_done;     /* The last piece has reached out_head. */
  bool close_after;
  bool local;             /* Answered by L itself (errors), never queued. */
  bool answer_started;    /* A piece of the response has reached L. */
  /* The connection's idle timeout while this exchange is at its head
   * (ymo_worker_set_timeout); 0: none, as by default. */
  int64_t flight_timeout_ms;

  /* The request record (record.c), written by L while parsing, immutable
   * once queued. */
  uint8_t *req;
  size_t req_len, req_cap;
  uint8_t http_major, http_minor, req_flags;
  uint32_t n_headers;
  /* The matched dynamic route's id + 1 (0: none) and its parameter
   * entries, which follow the header entries (from params_start). */
  uint32_t route, n_params;
  size_t headers_start, params_start, body_start;

  /* JS thread only. */
  uint32_t slot;
  int resp_state;         /* 0 none, 1 streaming, 2 done. */
  bool resp_chunked;
  bool resp_no_body;
  bool resp_close;
  /* The coder of a compressed streamed response (compress.h), freed when
   * the slot is finished. */
  struct ymo_compressor *resp_coder;
  /* Bytes handed to L and not yet written, for backpressure (L decrements). */
  atomic_llong unwritten;
  /* Set by the JS thread when it waits for the response to drain; L clears
   * it and queues a drain notice once unwritten is at the low-water mark. */
  atomic_int want_drain;
  /* Request body bytes queued for JS and not yet read by it (L adds, the JS
   * thread subtracts in ymo_worker_body_ack), and the flag that says L
   * stopped reading because of them (see pause_for_body in http1.c). */
  atomic_llong body_unacked;
  atomic_int want_resume;
  /* L only: the head went to JS before the body was complete. */
  bool streaming;
  /* What a layer above hangs on the exchange (an accepted WebSocket's
   * state, websocket.h), or NULL; freed with the exchange. */
  ymo_attachment_t *attachment;
};

/* A new exchange with one reference (the caller's) and, with `record`, an
 * empty request record; NULL when out of memory. */
ymo_exchange_t *ymo__exchange_new(ymo_worker_t *worker, ymo_out_pool_t *spares,
                                  ymo_session_t *session, bool record);
void ymo__exchange_ref(ymo_exchange_t *ex);
void ymo__exchange_unref(ymo_exchange_t *ex);

/* An output piece for len bytes, from ex's spares when it fits (ex may be
 * NULL for a piece about no exchange: a server-wide publish); give it back
 * with ymo__out_free() on any thread. */
ymo_out_t *ymo__out_new(ymo_exchange_t *ex, size_t len, int flags);
/* The same from pool (NULL: none), or the first larger pool, whose pieces
 * len fits. */
ymo_out_t *ymo__out_new_in(ymo_out_pool_t *pool, ymo_exchange_t *ex,
                           size_t len, int flags);
/* Gives a piece back to its pool, on a thread the pool allows, or frees it. */
void ymo__out_free(ymo_out_t *out);

/* ---------------------------------------------------------------------------
 * Request records (record.c): the format is YMO_RECORD_MAP in ymo.h. L
 * appends a request's bytes as they are parsed and fills the fixed part at
 * the end; ymo_worker_take() copies records out and writes notices.
 * ------------------------------------------------------------------------- */

/* Appends bytes to ex's record; false when out of memory. */
bool ymo__record_append(ymo_exchange_t *ex, const void *data, size_t len);
/* Opens a header entry (both lengths 0) at the end of the record and
 * returns its offset, or 0 when out of memory. */
size_t ymo__record_field_open(ymo_exchange_t *ex);
/* Appends len bytes of the name (or of the value) of the entry at `at`,
 * the last one; false when out of memory. */
bool ymo__record_field_append(ymo_exchange_t *ex, size_t at, bool value,
                              const void *data, size_t len);
/* Drops the last `len` bytes of the value of the entry at `at`, the last
 * one (trailing whitespace, say). */
void ymo__record_field_trim(ymo_exchange_t *ex, size_t at, size_t len);
/* The name and value of the entry at `at`, and their lengths. */
void ymo__record_field_get(const ymo_exchange_t *ex, size_t at,
                           const char **name, uint32_t *name_len,
                           const char **value, uint32_t *value_len);
/* The header entry after the one at `at` (start with 0 for the first), or
 * 0 after the last; for reading a request's fields in C. */
size_t ymo__record_field_next(const ymo_exchange_t *ex, size_t at);
/* Whether a field name (len bytes) is `want`, compared case-insensitively. */
bool ymo__field_name_is(const char *name, size_t len, const char *want);
/* The value of ex's first header field called `name`; false if none. */
bool ymo__record_field_find(const ymo_exchange_t *ex, const char *name,
                            const char **value, uint32_t *value_len);
/* The method bytes, right after the fixed part. */
const uint8_t *ymo__record_method(const ymo_exchange_t *ex);
/* Writes the fixed part of ex's record and pads it; false when out of
 * memory. */
bool ymo__record_finish(ymo_exchange_t *ex, size_t method_len, size_t url_len,
                        const struct sockaddr_storage *peer);
/* Copies ex's finished record to dst (ex->req_len bytes) under handle (id,
 * gen). */
void ymo__record_copy(uint8_t *dst, const ymo_exchange_t *ex, uint32_t id,
                      uint32_t gen);
/* Writes a notice record of `size` bytes (YMO_REQ_ABORT_SIZE, or more for a
 * body piece) with `flags`, carrying `len` bytes of data when data is not
 * NULL. */
void ymo__record_notice(uint8_t *dst, size_t size, uint32_t id, uint32_t gen,
                        uint8_t flags, const uint8_t *data, size_t len);

#endif /* YMO_EXCHANGE_H */
