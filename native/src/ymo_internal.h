/* Internal declarations shared by the library's C files; never installed and
 * never seen by the FFI. Symbols here have hidden visibility (the default for
 * this library), whatever their prefix. */
#ifndef YMO_INTERNAL_H
#define YMO_INTERNAL_H

#include <ev.h>
#include <llhttp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "ymo.h"

#define YMO_VERSION_STRING "0.1.0"

/* Nodes preallocated per queue; past these the queue falls back to malloc. */
#define YMO_WORKER_QUEUE_POOL_SIZE 256

/* ---------------------------------------------------------------------------
 * Queue: a FIFO of pointers with a preallocated node pool. Not thread-safe by
 * itself: each queue is protected by the lock of the struct that owns it.
 * ------------------------------------------------------------------------- */
typedef struct ymo_queue_node {
  struct ymo_queue_node *next;
  void *item;
  bool from_pool;
} ymo_queue_node_t;

typedef struct ymo_queue {
  ymo_queue_node_t *head;
  ymo_queue_node_t *tail;
  ymo_queue_node_t *free_nodes; /* Unused pool nodes. */
  size_t count;
} ymo_queue_t;

void ymo__queue_init(ymo_queue_t *q, ymo_queue_node_t *pool, size_t n);
/* Appends item; uses a pool node if one is free, else the heap. Returns 0 or
 * YMO_ENOMEM (only when the heap fails too); an item is never dropped. */
int ymo__queue_push(ymo_queue_t *q, void *item);
/* Removes and returns the first item, or NULL when empty. */
void *ymo__queue_pop(ymo_queue_t *q);
/* Detaches the whole list (for draining outside the lock); the caller walks
 * it and gives the nodes back with ymo__queue_recycle() under the lock. */
ymo_queue_node_t *ymo__queue_take_all(ymo_queue_t *q);
void ymo__queue_recycle(ymo_queue_t *q, ymo_queue_node_t *list);
/* Frees heap nodes; pool nodes belong to the owner's storage. */
void ymo__queue_destroy(ymo_queue_t *q);

/* ---------------------------------------------------------------------------
 * Output: one piece of response bytes on its way from a JS thread to L, and
 * then, on L, in its exchange's list of bytes to write.
 * ------------------------------------------------------------------------- */
/* Internal flags on an output piece, beside YMO_RESP_DONE and _CLOSE:
 * ABORT closes the connection without finishing the response; RESUME
 * carries no bytes and asks L to read the connection's body again. */
#define YMO__OUT_ABORT 64
#define YMO__OUT_RESUME 128

typedef struct ymo_out {
  struct ymo_out *next;  /* L only: the exchange's pending-write list. */
  ymo_exchange_t *exchange;
  ymo_worker_t *pool;    /* The worker whose spares it returns to, or NULL. */
  int flags;             /* YMO_RESP_DONE, YMO_RESP_CLOSE. */
  size_t len;
  size_t off;            /* L only: bytes already written. */
  uint8_t data[];
} ymo_out_t;

typedef struct ymo_session ymo_session_t;

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

  /* L only. */
  ymo_session_t *session; /* NULL once the connection has closed. */
  ymo_exchange_t *fifo_next;
  ymo_out_t *out_head, *out_tail;
  size_t out_bytes;       /* Queued and not yet written. */
  bool response_done;     /* The last piece has reached out_head. */
  bool close_after;
  bool local;             /* Answered by L itself (errors), never queued. */

  /* Written by L while parsing, immutable once queued. */
  uint8_t *req;
  size_t req_len, req_cap;
  uint8_t http_major, http_minor, req_flags;
  uint32_t n_headers;
  size_t headers_start, body_start;

  /* JS thread only. */
  uint32_t slot;
  int resp_state;         /* 0 none, 1 streaming, 2 done. */
  bool resp_chunked;
  bool resp_no_body;
  bool resp_close;
  /* Bytes handed to L and not yet written, for backpressure (L decrements). */
  atomic_llong unwritten;
  /* Set by the JS thread when it waits for the response to drain; L clears
   * it and queues a drain notice once unwritten is at the low-water mark. */
  atomic_int want_drain;
  /* Request body bytes queued for JS and not yet read by it (L adds, the JS
   * thread subtracts in ymo_worker_body_ack), and the flag that says L
   * stopped reading because of them (see pause_for_body in http.c). */
  atomic_llong body_unacked;
  atomic_int want_resume;
  /* L only: the head went to JS before the body was complete. */
  bool streaming;
};

void ymo__exchange_ref(ymo_exchange_t *ex);
void ymo__exchange_unref(ymo_exchange_t *ex);

/* ---------------------------------------------------------------------------
 * Worker.
 *
 * Locking: lock_in protects queue_in, pool_in, notify_fn, notified, running
 * and stopped; ready_in is signalled under it. lock_out protects queue_out and
 * pool_out. No thread ever holds both locks. ev_async_send() on event_out
 * coalesces: many sends before L runs wake it once, so L always drains the
 * whole of queue_out. The slot table is touched only by the worker's JS
 * thread.
 * ------------------------------------------------------------------------- */
typedef struct ymo_slot {
  ymo_exchange_t *exchange; /* NULL when free. */
  uint32_t gen;
  uint32_t next_free;
} ymo_slot_t;

struct ymo_worker {
  ymo_queue_t queue_in;
  ymo_queue_t queue_out;
  ymo_queue_node_t pool_in[YMO_WORKER_QUEUE_POOL_SIZE];
  ymo_queue_node_t pool_out[YMO_WORKER_QUEUE_POOL_SIZE];

  /* Callbacks, all on L: prepare and check drain queue_out on each loop
   * iteration; idle is started when a drain stopped at its budget, so the
   * rest is written on the next iteration without a new async send. */
  ev_prepare prepare_watcher;
  ev_check check_watcher;
  ev_idle idle_watcher;

  /* Output data is signalled to the loop with an async watcher: */
  ev_async event_out;
  pthread_mutex_t lock_out;

  /* Input data is signalled with a condition variable (Deno's waiter) and
   * the notify callback (Bun's threadsafe JSCallback): */
  pthread_mutex_t lock_in;
  pthread_cond_t ready_in;
  ymo_notify_fn notify_fn;
  bool notified;
  bool stopped;

  /* The "thread": the JS thread that drives this worker, known only by the
   * calls it makes. */
  pthread_t thread;
  size_t id;
  int running;

  ymo_server_t *server;
  struct ev_loop *loop;

  /* Counters for YMO_STATS=1 (printed when the server is freed): waits and
   * takes by the JS thread, exchanges taken, drains of queue_out by L. */
  unsigned long stat_waits, stat_takes, stat_taken, stat_drains;

  /* Spare output pieces of YMO__OUT_POOLED bytes, reused instead of a
   * malloc and free per response: glibc gives memory freed at the top of
   * the heap back to the system, so 16 KiB bodies allocated on the JS thread
   * and freed on L made the heap shrink and grow, page faults included, on
   * every request. Protected by lock_out. */
  ymo_out_t *spare;
  size_t n_spare;

  /* JS thread only. */
  ymo_slot_t *slots;
  uint32_t n_slots, first_free;
  time_t date_sec;
  char date[40];
};

int ymo_worker_init(struct ev_loop *loop, size_t thread_id,
                    ymo_worker_t *worker);
void ymo__worker_destroy(ymo_worker_t *worker);
/* L: queue an exchange for JS (takes a new reference) and wake the worker on
 * the empty-to-non-empty transition. */
int ymo_worker_add_exchange(ymo_worker_t *worker, ymo_exchange_t *exchange);
/* L: the client of a queued or taken exchange went away; JS learns it from
 * an abort record in its next take(). */
int ymo__worker_add_abort(ymo_worker_t *worker, ymo_exchange_t *exchange);
/* L: a piece of a streaming request's body (data NULL, len 0 and last set
 * for its end), copied into queue_in for JS. */
int ymo__worker_add_body(ymo_worker_t *worker, ymo_exchange_t *exchange,
                         const uint8_t *data, size_t len, bool last);
/* L: JS read enough of a body for the connection to be read again. */
void ymo__session_resume_body(ymo_session_t *s);
/* L: a response JS waits on has drained (see want_drain). */
int ymo__worker_add_drain(ymo_worker_t *worker, ymo_exchange_t *exchange);
/* L: the server stopped; release the waiter and call notify(1). */
void ymo__worker_release_waiters(ymo_worker_t *worker);
/* L: watchers on and off the loop. */
void ymo__worker_attach(ymo_worker_t *worker);
/* L: deliver what queue_out holds now. */
void ymo__worker_drain(ymo_worker_t *worker);
void ymo__worker_detach(ymo_worker_t *worker);

static inline int ymo_worker_lock_in(ymo_worker_t *w) {
  return pthread_mutex_lock(&w->lock_in);
}
static inline int ymo_worker_unlock_in(ymo_worker_t *w) {
  return pthread_mutex_unlock(&w->lock_in);
}
static inline int ymo_worker_lock_out(ymo_worker_t *w) {
  return pthread_mutex_lock(&w->lock_out);
}
static inline int ymo_worker_unlock_out(ymo_worker_t *w) {
  return pthread_mutex_unlock(&w->lock_out);
}

/* ---------------------------------------------------------------------------
 * Session: one connection, owned and touched by L only.
 * ------------------------------------------------------------------------- */
struct ymo_session {
  ymo_server_t *server;
  ymo_worker_t *worker;
  int fd;
  ev_io rio, wio;
  ev_timer timer;
  llhttp_t parser;
  ymo_exchange_t *cur;         /* The request being parsed. */
  ymo_exchange_t *fifo_head;   /* Requests in order, awaiting responses. */
  ymo_exchange_t *fifo_tail;
  int fifo_len;
  uint8_t *pending;            /* Bytes read but not yet parsed. */
  size_t pending_len;
  size_t head_bytes;           /* Bytes of the current request head. */
  bool in_value;               /* Last header callback was a value. */
  bool reading;                /* rio is started. */
  bool paused;                 /* Parser paused; pending holds the rest. */
  bool no_more_requests;       /* Parse nothing more from this client. */
  bool closed;
  bool flush_owed;             /* A parse callback queued a response. */
  bool flush_listed;           /* On the server's list of sessions to write. */
  ymo_session_t *flush_next;
  const char *exec_start;      /* The buffer llhttp is parsing now. */
  const char *exec_end;
  struct sockaddr_storage peer;
  ymo_session_t *prev, *next;
};

/* ---------------------------------------------------------------------------
 * Server.
 * ------------------------------------------------------------------------- */

/* A fixed response served by L (ymo_server_add_static); immutable once the
 * server has started. */
typedef struct ymo_static_route {
  char *path;
  size_t path_len;
  int status;
  uint8_t *headers;
  size_t headers_len;
  uint8_t *body;
  size_t body_len;
} ymo_static_route_t;
struct ymo_server {
  struct ev_loop *loop;
  pthread_t thread;
  bool thread_started;
  bool joined;
  pthread_mutex_t state_lock;  /* Serialises start/stop/join callers. */

  int listen_fd;
  int port;                    /* Saved at listen; never changes after. */
  char host[64];               /* The bound address as text, likewise. */
  ev_io accept_watcher;
  ev_async control;            /* Shutdown and stop requests. */
  ev_timer grace_timer;
  atomic_int draining;         /* Set once; read by JS threads too. */
  atomic_int stop_now;
  atomic_int grace_ms;
  atomic_int connections;

  int64_t options[16]; /* Indexed by enum ymo_option. */
  ymo_static_route_t *routes;
  size_t n_routes;

  ymo_session_t *sessions;     /* L only. */
  ymo_session_t *closed_sessions; /* L only: freed in the reaper. */
  ymo_session_t *to_flush;     /* L only: sessions given output in a drain. */
  ev_prepare reaper;
  size_t next_worker;          /* L only: round robin. */
  uint8_t *read_buf;           /* L only: one read buffer for the loop. */
  time_t date_sec;             /* L only. */
  char date[40];

  int n_workers;
  ymo_worker_t *workers[];
};

#define YMO_OPT(server, name) ((server)->options[YMO_OPT_##name])

/* Formats an IMF-fixdate "Date: ...\r\n" line into cache when the second
 * changed; returns its length. */
size_t ymo__date_line(time_t *cached_sec, char cache[40]);

/* HTTP (http.c), L only. */
void ymo__session_start(ymo_server_t *server, int fd,
                        const struct sockaddr_storage *peer);
void ymo__session_close(ymo_session_t *s);
void ymo__session_flush(ymo_session_t *s);
/* L: move an out piece into its exchange; the session is written by
 * ymo__flush_delivered() once the whole drain is delivered, so several
 * pieces for one connection go out in one writev. */
void ymo__deliver_out(ymo_out_t *out);
void ymo__flush_delivered(ymo_server_t *server);
void ymo__server_session_closed(ymo_server_t *server);
/* Graceful shutdown: close idle sessions, let busy ones finish. */
void ymo__sessions_drain(ymo_server_t *server);
/* Free sessions closed during the last loop iteration. */
void ymo__sessions_reap(ymo_server_t *server);
size_t ymo__read_buf_size(void);

/* L: the static route for a request target, or NULL. */
const ymo_static_route_t *ymo__static_route(ymo_server_t *server,
                                           const uint8_t *target, size_t len);

/* Builds a response head for status into buf (cap bytes); returns length. */
size_t ymo__format_head(char *buf, size_t cap, int status, const char *date,
                        size_t date_len, int64_t content_length,
                        bool chunked, bool close, bool keepalive_10);
const char *ymo__reason(int status);

/* An output piece for len bytes, from ex's worker's spares when it fits;
 * give it back with ymo__out_free() on any thread. */
ymo_out_t *ymo__out_new(ymo_exchange_t *ex, size_t len, int flags);
void ymo__out_free(ymo_out_t *out);

#endif /* YMO_INTERNAL_H */
