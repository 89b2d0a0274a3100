/* Layer 5: the connection. A connection core (conn.c: the fd, reading and
 * writing, the FIFO of exchanges in request order, one timer, the drain of
 * queue_out, the set of open connections) with two seams, each a small table
 * of functions: a transport under it (tcp.c: plain TCP; tls.c: TLS) and a
 * protocol over it (http1.c: HTTP/1.1 with llhttp; websocket.c after an
 * upgrade). A new transport or protocol is a new file with its own table,
 * not a branch in the core.
 * HTTP/1.1 has two files: http1_parser.c records what llhttp finds, and
 * http1.c acts on it.
 * Static routes (routes.c) are a table the server owns and passes down.
 * Everything in this layer runs on L. */
#ifndef YMO_CONN_H
#define YMO_CONN_H

#include <llhttp.h>
#include <sys/uio.h>
#include <sys/types.h>

#include "worker.h"

typedef struct ymo_conns ymo_conns_t;

/* ---------------------------------------------------------------------------
 * Seams.
 * ------------------------------------------------------------------------- */

/* How bytes move on a connection's fd. read and writev return as the
 * system calls they stand for, with errno set on failure; EAGAIN means the
 * core waits for the fd to be ready and calls again, with the same bytes
 * (and perhaps more) for writev. */
typedef struct ymo_transport {
  /* A connection opened on s->fd: set up s->transport_state. False when
   * that failed (the core then closes it at once). NULL: nothing to set up
   * (plain TCP). */
  bool (*open)(ymo_session_t *s);
  /* At most cap bytes; cap is at least 16 KiB (conn.c's read buffer). */
  ssize_t (*read)(ymo_session_t *s, uint8_t *buf, size_t cap);
  /* Writes iov without raising SIGPIPE when the peer is gone. */
  ssize_t (*writev)(ymo_session_t *s, const struct iovec *iov, int n_iov);
  /* After read or writev failed with EAGAIN: true when the call waits for
   * the other readiness than its own, a read for the fd to be writable or a
   * write for it to be readable. TLS needs it: a read that completes a
   * handshake writes the server's flight, and a full socket buffer then
   * blocks the read on writability (tls.c). The core then watches the
   * other event and retries the blocked call when it comes (conn.c). NULL:
   * never (plain TCP). */
  bool (*crossed)(ymo_session_t *s);
  /* After a read that returned data: true when the transport holds more
   * readable bytes that the fd will not signal (TLS reads ahead of the
   * records it hands over). The core then reads again without waiting for
   * the fd (conn.c). NULL: never (plain TCP). */
  bool (*buffered)(ymo_session_t *s);
  /* True while bytes writev took are not all on the socket yet (TLS sends
   * records gathered from several pieces in one call, and keeps what the
   * socket did not take). The core then keeps watching for writability,
   * calls writev with no pieces to push them, and neither closes nor calls
   * the protocol's flushed() before they are out. NULL: never. */
  bool (*unsent)(ymo_session_t *s);
  /* Closes the fd, and frees s->transport_state if any. */
  void (*close)(ymo_session_t *s);
} ymo_transport_t;

/* What the bytes mean. The core calls these; a protocol calls the core's
 * ymo__conn_* functions. Those returning bool return false when the
 * connection was closed meanwhile. */
typedef struct ymo_protocol {
  /* A connection opened: set up the protocol's state. */
  void (*open)(ymo_session_t *s);
  /* Bytes arrived. */
  bool (*data)(ymo_session_t *s, const uint8_t *data, size_t len);
  /* The peer shut down its sending side (end of stream): nothing more will
   * be read. The protocol decides whether what it holds is still answered
   * (RFC 9112 section 9.6) or the connection closes now. */
  void (*eof)(ymo_session_t *s);
  /* Every response that could be written is written. */
  bool (*flushed)(ymo_session_t *s);
  /* JS has read enough of the current request's body: read on. */
  void (*resume)(ymo_session_t *s);
  /* The connection's timer expired. */
  void (*timeout)(ymo_session_t *s);
  /* Graceful shutdown: close if idle, else finish what is in flight. */
  void (*drain)(ymo_session_t *s);
  /* The connection closed: free the protocol's state. */
  void (*close)(ymo_session_t *s);
} ymo_protocol_t;

extern const ymo_transport_t ymo__tcp;
extern const ymo_protocol_t ymo__http1;

/* ---------------------------------------------------------------------------
 * Static routes (routes.c): fixed responses served by L
 * (ymo_server_add_static); the server owns the table and hands it down; it
 * is immutable once the server has started.
 * ------------------------------------------------------------------------- */
typedef struct ymo_static_route {
  char *path;
  size_t path_len;
  int status;
  uint8_t *headers;
  size_t headers_len;
  uint8_t *body;
  size_t body_len;
  /* With YMO_OPT_COMPRESSION (ymo__routes_compress): the route as sent for
   * each coding, by enum ymo_coding, made once at start; [NONE] is the
   * route with Vary added, and a coding the route cannot have is all zero.
   * NULL when the option is off or the route has no body. */
  struct ymo_static_route *coded;
} ymo_static_route_t;

/* Dynamic routes (router.c): path patterns whose requests go to JS with
 * the route's id and its parameters' values in the record. */
typedef struct ymo_pattern ymo_pattern_t;
typedef struct ymo_router {
  ymo_pattern_t *patterns; /* In the order added. */
  size_t n_patterns;
} ymo_router_t;

typedef struct ymo_routes {
  ymo_static_route_t *routes; /* Newest first: a later route wins. */
  size_t n_routes;
  ymo_router_t router;
} ymo_routes_t;

/* Adds pattern ("/", literal segments, ":name" parameters, a final "*")
 * for method (NULL: any) as route id. YMO_EINVAL for a bad pattern. */
int ymo__router_add(ymo_router_t *router, const char *pattern,
                    const char *method, int32_t id);
/* On L, when ex's head is complete and before any of its body is recorded:
 * matches the request against the patterns; on a match appends one record
 * entry per parameter value and sets *route to the id + 1 and *n_params
 * (both 0 without a match). False when memory ran out. */
bool ymo__router_match(const ymo_router_t *router, ymo_exchange_t *ex,
                       const uint8_t *method, size_t method_len,
                       const uint8_t *target, size_t target_len,
                       uint32_t *route, uint32_t *n_params);
void ymo__router_free(ymo_router_t *router);

int ymo__routes_add(ymo_routes_t *routes, const char *path, int status,
                    const uint8_t *headers, size_t headers_len,
                    const uint8_t *body, size_t body_len);
/* The route for a request target, or NULL. */
const ymo_static_route_t *ymo__routes_find(const ymo_routes_t *routes,
                                           const uint8_t *target, size_t len);
/* With YMO_OPT_COMPRESSION, before L starts: makes every route's coded
 * variants (compress.h). Returns 0 or YMO_ENOMEM. */
int ymo__routes_compress(ymo_routes_t *routes);
/* On L: the variant of route (which may be NULL) that ex's request gets by
 * its Accept-Encoding; route itself when it has none. */
const ymo_static_route_t *ymo__routes_pick(const ymo_static_route_t *route,
                                           const ymo_exchange_t *ex);
void ymo__routes_free(ymo_routes_t *routes);

/* ---------------------------------------------------------------------------
 * HTTP/1.1 (http1.c, http1_parser.c): the protocol's state, embedded in each
 * session.
 * ------------------------------------------------------------------------- */

/* What a paused parser asks http1.c to act on. */
enum ymo_http1_verdict {
  YMO_HTTP1_NONE,
  YMO_HTTP1_CONTINUE, /* A head wants 100 Continue. */
  YMO_HTTP1_BODY,     /* A piece of a streamed body: body_at, body_piece. */
  YMO_HTTP1_MESSAGE,  /* A request is complete. */
  /* Chunk extensions llhttp 8.1 mis-parses (http1_parser.c): a token value
   * ended by ";" (resume at the ";"), a quoted-pair's backslash (resume
   * after the escaped byte, inside the quoted string). */
  YMO_HTTP1_EXT_SEMICOLON,
  YMO_HTTP1_EXT_ESCAPE
};

/* Per-request parse state that does not belong in the exchange; cleared
 * when a request begins. */
typedef struct ymo_http1_request {
  size_t method_len, url_len, header_at, body_len;
  int hosts;
  bool expect_continue;
  bool has_body; /* Content-Length > 0, or chunked. */
  /* The head is complete: field callbacks from now on are trailers, which
   * count against the head limit but are not passed on. */
  bool in_trailers;
  /* A 100 Continue is owed once the responses ahead are written. */
  bool continue_owed;
  /* Transfer-Encoding seen, and whether every coding in it was "chunked". */
  bool te_seen, te_only_chunked;
  bool bad_host;
  /* Chunk extensions: inside a quoted value; its span goes on past the
   * buffer; a quoted-pair's escaped byte is the next one read. */
  bool ext_quoted, ext_continues, ext_escape_pending;
  /* A field's value began but its line's CR was not read yet: the next read
   * gets its trailing OWS rewritten (ymo__http1_value_ows). */
  bool ows_lookahead;
  /* The line-end check (see scan_lines): its state, and where the last
   * span llhttp reported ended, if in the buffer being parsed. */
  int line_state;
  const char *span_end;
} ymo_http1_request_t;

typedef struct ymo_http1 {
  llhttp_t parser;
  ymo_http1_request_t req;
  /* What the callbacks recorded: the status one failed with, or 0; what
   * the parser paused for (enum ymo_http1_verdict); the streamed body
   * piece, and the framing of the request just completed. */
  int error_status;
  int verdict;
  const uint8_t *body_at;
  size_t body_piece;
  bool keepalive, upgrade;
  uint8_t *pending;            /* Bytes read but not yet parsed. */
  size_t pending_len;
  /* SP and HTAB that ended the last read inside a head, parsed with the
   * next read (see parse() in http1.c). */
  uint8_t ows_held[64];
  size_t ows_held_len;
  size_t head_bytes;           /* Bytes of the current request head. */
  bool in_value;               /* Last header callback was a value. */
  bool paused;                 /* Parser paused; pending holds the rest. */
  bool flush_owed;             /* A parse callback queued a response. */
  /* A WebSocket handshake was read: keep what follows it in pending. */
  bool keep_rest;
  const char *exec_start;      /* The buffer llhttp is parsing now. */
  const char *exec_end;
} ymo_http1_t;

/* What the connection's one ev_timer is timing. */
enum ymo_timer_state {
  YMO_TIMER_OFF,
  YMO_TIMER_HEAD,
  YMO_TIMER_IDLE,
  /* The head exchange's own idle timeout (ymo_worker_set_timeout): reads
   * and writes push it back. */
  YMO_TIMER_FLIGHT,
};

/* ---------------------------------------------------------------------------
 * Session: one connection, owned and touched by L only. Created by
 * ymo__conn_start(), listed in its ymo_conns_t until closed, then freed by
 * ymo__conns_reap() after the loop iteration that closed it (callers up the
 * stack may still look at `closed`).
 * ------------------------------------------------------------------------- */
struct ymo_session {
  ymo_conns_t *conns;
  ymo_worker_t *worker;
  const ymo_transport_t *transport;
  const ymo_protocol_t *protocol;
  int fd;
  ev_io rio, wio;
  ev_timer timer;
  int timer_state;             /* enum ymo_timer_state. */
  ymo_exchange_t *cur;         /* The request being received. */
  ymo_exchange_t *fifo_head;   /* Requests in order, awaiting responses. */
  ymo_exchange_t *fifo_tail;
  int fifo_len;
  bool reading;                /* rio is started. */
  bool read_eof;               /* The peer sent its FIN: never read again. */
  bool no_more_requests;       /* Take nothing more from this client. */
  bool closed;
  bool flush_listed;           /* On the set's list of sessions to write. */
  bool read_listed;            /* On the set's list of sessions to read. */
  /* The transport's crossed waits (ymo_transport_t.crossed): a read waits
   * for writability (rio is stopped meanwhile, `reading` unchanged), or a
   * write waits for readability (rio runs even if `reading` is false). */
  bool read_crossed, write_crossed;
  void *transport_state;       /* The transport's own (tls.c's), or NULL. */
  ymo_session_t *flush_next;
  ymo_session_t *read_next;
  struct sockaddr_storage peer;
  ymo_session_t *prev, *next;
  ymo_http1_t http1;           /* The protocol's state. */
  /* After an upgrade: WebSocket's (websocket.h), or NULL. */
  struct ymo_ws_conn *ws;
};

/* ---------------------------------------------------------------------------
 * The set of open connections of one loop, L only except `connections`.
 * The server fills in the configuration fields before the loop starts.
 * ------------------------------------------------------------------------- */
struct ymo_conns {
  struct ev_loop *loop;
  const int64_t *options;      /* Indexed by enum ymo_option. */
  const ymo_routes_t *routes;
  const atomic_int *draining;  /* The server is shutting down. */
  const ymo_transport_t *transport;
  void *transport_ctx;         /* The transport's per-server state, or NULL. */
  const ymo_protocol_t *protocol;
  ymo_worker_t *const *workers;
  int n_workers;
  size_t next_worker;          /* Round robin. */
  /* Called when the last open connection has closed. */
  void (*on_empty)(void *arg);
  void *on_empty_arg;

  atomic_int connections;      /* Open ones; read by any thread. */
  ymo_session_t *sessions;
  ymo_session_t *closed_sessions; /* Freed in the reaper. */
  ymo_session_t *to_flush;     /* Sessions given output in a drain. */
  uint8_t *read_buf;           /* One read buffer for the loop. */
  struct ymo_topics *topics;   /* WebSocket pub/sub (topics.c), or NULL. */
  ymo_out_pool_t ws_frames;    /* Pieces of L's own WebSocket frames. */
  ymo_date_t date;             /* L's Date cache. */
  /* Batched reads and writes (ring.h; plain TCP only, set up when L
   * starts), or NULL: sessions found readable
   * in a loop iteration are listed in to_read and read together by
   * read_batch, a check watcher of the lowest priority (so after every I/O
   * callback of the iteration), each into its slot of read_slots. */
  struct ymo_ring *ring;
  ymo_session_t *to_read;
  ev_check read_batch;
  uint8_t *read_slots;
  /* Batches of sends and of receives run through the ring, and the calls
   * they held, for YMO_STATS=1 and the tests. */
  unsigned long stat_write_batches, stat_writes;
  unsigned long stat_read_batches, stat_reads;
};

#define YMO_OPT(owner, name) ((owner)->options[YMO_OPT_##name])

/* The set (conn.c). */
int ymo__conns_init(ymo_conns_t *c);
void ymo__conns_free(ymo_conns_t *c);
/* Installs the drain of every worker's queue_out on the loop, and removes
 * it after a last drain. */
void ymo__conns_attach(ymo_conns_t *c);
void ymo__conns_detach(ymo_conns_t *c);
/* Graceful shutdown: close idle connections, let busy ones finish. */
void ymo__conns_drain(ymo_conns_t *c);
void ymo__conns_close_all(ymo_conns_t *c);
/* Free sessions closed during the last loop iteration. */
void ymo__conns_reap(ymo_conns_t *c);

/* HTTP/1.1's parsing half (http1_parser.c), for http1.c. */
const llhttp_settings_t *ymo__http1_settings(void);
/* Records status as the request's error; returns HPE_USER. */
int ymo__http1_fail(ymo_session_t *s, int status);
/* Checks the line ends of a head still coming, read so far in the buffer
 * being parsed; the state carries over to the next read. */
bool ymo__http1_head_lines_ok(ymo_session_t *s);
/* Turns each HTAB in the OWS before the first CR in [from, to) into SP,
 * so llhttp takes it as OWS for every field; notes in ows_lookahead when
 * no CR is there yet. The bytes are ymo's own read buffer. */
void ymo__http1_value_ows(ymo_session_t *s, uint8_t *from, uint8_t *to);
/* Puts a parser paused on YMO_HTTP1_EXT_ESCAPE back inside the quoted
 * chunk-extension value; false when this llhttp cannot be (then the
 * quoted-pair is refused, as llhttp itself would). */
bool ymo__http1_ext_requote(llhttp_t *parser);
/* Whether c may follow a backslash in a quoted-pair (RFC 9110 5.6.4). */
bool ymo__http1_quoted_pair_ok(uint8_t c);

/* One connection (conn.c), for the protocols. */
void ymo__conn_start(ymo_conns_t *c, int fd,
                     const struct sockaddr_storage *peer);
void ymo__conn_close(ymo_session_t *s);
/* Writes what the FIFO's head exchanges have, in order. */
void ymo__conn_flush(ymo_session_t *s);
void ymo__conn_fifo_push(ymo_session_t *s, ymo_exchange_t *ex);
void ymo__conn_start_reading(ymo_session_t *s);
void ymo__conn_stop_reading(ymo_session_t *s);
/* Re-arms the timer when the connection's state (receiving a request, idle,
 * or waiting for responses) differs from timer_state, so a client dribbling
 * bytes cannot push its deadline back; setting timer_state to YMO_TIMER_OFF
 * first gives a fresh deadline. */
void ymo__conn_arm_timer(ymo_session_t *s);
/* Bytes moved: pushes an in-flight idle timeout back. */
void ymo__conn_touch(ymo_session_t *s);
/* Writes a short message at once, outside the FIFO (100 Continue). */
void ymo__conn_send_now(ymo_session_t *s, const void *data, size_t len);

#endif /* YMO_CONN_H */
