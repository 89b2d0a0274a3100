/* Layer 5: WebSocket as a protocol of the connection layer, beside HTTP/1.1.
 * ws.h is the protocol's pure core (frames, UTF-8, deflate, handshake
 * values); this header joins it to sessions, exchanges and the worker:
 *
 *  - http1.c flags a valid opening handshake in the request record
 *    (YMO_REQF_UPGRADE) and keeps the bytes that follow it;
 *  - ws_worker.c, on the JS thread, accepts it (the 101 goes out as an
 *    output piece marked YMO__OUT_UPGRADE) and frames what JS sends;
 *  - websocket.c, on L, switches the session to this protocol when that
 *    piece reaches it, parses the client's frames into records for JS,
 *    answers pings and runs the closing handshake.
 *
 * The accepted exchange stays at the head of its session's FIFO for the
 * socket's whole life (its response is never "done"), so every frame either
 * side queues goes out through the connection core's usual writes, in
 * order. */
#ifndef YMO_WEBSOCKET_H
#define YMO_WEBSOCKET_H

#include "conn.h"
#include "ws.h"

/* Internal flags on output pieces (beside those in exchange.h): the 101 that
 * switches the connection, and a close frame from JS. */
#define YMO__OUT_UPGRADE 512
#define YMO__OUT_WS_CLOSE 1024
/* Pub/sub: subscribe the piece's socket to the topic in its data, or
 * unsubscribe it; publish a frame to a topic's subscribers (the data is
 * ymo__ws_publish_t's layout; the exchange, if any, is the sender). */
#define YMO__OUT_WS_SUBSCRIBE 2048
#define YMO__OUT_WS_UNSUBSCRIBE 4096
#define YMO__OUT_WS_PUBLISH 8192
/* A piece of frames L wrote itself (pongs, published messages): later ones
 * go into it while it has room (websocket.c, queue_frame). */
#define YMO__OUT_WS_FRAMES 16384
/* L's pieces of frames (pongs, closes, publishes) come from a pool on the
 * connection set, not from malloc: a publish to 1,000 subscribers took and
 * freed 1,000 of them each time, and glibc grew and trimmed L's heap for
 * it, a third of the fan-out's CPU in page faults and TLB shootdowns. A
 * piece has room for several small frames; up to 4,096 (4 MiB) are kept. */
#define YMO__WS_FRAMES_PIECE 1000
#define YMO__WS_FRAMES_SPARES 4096

/* A publish piece's data: a 1-byte flag (1: the sender gets it too), the
 * topic's length (2 bytes, little-endian), the topic, then the frame. */
#define YMO__PUBLISH_SELF 1
#define YMO__PUBLISH_HEAD 3

/* What the JS thread decided at the handshake, hung on the exchange
 * (ex->attachment). Written by the JS thread before the 101 is queued, read by L
 * once it arrives (the queue's lock orders the two); freed with the
 * exchange. */
typedef struct ymo_ws_link {
  ymo_attachment_t base; /* ex->attachment points here. */
  ymo_ws_deflate_params_t deflate;
  /* JS thread only: the compressor of outgoing messages (NULL without
   * permessage-deflate), and whether JS sent its close frame. */
  ymo_ws_deflater_t *deflater;
  bool close_sent;
} ymo_ws_link_t;

/* The WebSocket state of an accepted exchange, or NULL. */
static inline ymo_ws_link_t *ymo__ws_link(const ymo_exchange_t *ex) {
  return (ymo_ws_link_t *)ex->attachment;
}

/* A session's WebSocket state (s->ws), on L. */
typedef struct ymo_ws_conn {
  ymo_exchange_t *ex; /* The socket's exchange: the FIFO's last. */
  ymo_ws_parser_t parser;
  bool close_sent;     /* A close frame was queued (by L or by JS). */
  bool close_received; /* The client's close frame (or a protocol error). */
  /* Close the connection once everything queued is written. */
  bool closing;
  /* The idle timeout ran out once and a ping went out (WS_SEND_PINGS). */
  bool pinged;
  /* The topics it subscribes to (topics.c). */
  struct ymo_topic **topics;
  size_t n_topics, cap_topics;
} ymo_ws_conn_t;

/* Pub/sub's table (topics.c), owned by the connection set; on L. */
typedef struct ymo_topic ymo_topic_t;
/* False when out of memory. Subscribing twice is once. */
bool ymo__topics_subscribe(ymo_conns_t *c, ymo_session_t *s,
                           const uint8_t *name, size_t len);
void ymo__topics_unsubscribe(ymo_conns_t *c, ymo_session_t *s,
                             const uint8_t *name, size_t len);
/* A closing session leaves every topic. */
void ymo__topics_leave_all(ymo_conns_t *c, ymo_session_t *s);
/* Calls fn for each open subscriber of the topic; returns how many. */
size_t ymo__topics_each(ymo_conns_t *c, const uint8_t *name, size_t len,
                        void (*fn)(ymo_session_t *s, void *arg), void *arg);
void ymo__topics_free(ymo_conns_t *c);

/* Any thread: queues a publish of one message (opcode 1 or 2) through w's
 * queue_out; sender (or NULL) is skipped unless flags has
 * YMO_WS_PUBLISH_SELF. Returns len or a negative error. */
int32_t ymo__ws_publish(ymo_worker_t *w, ymo_exchange_t *sender,
                        const uint8_t *topic, int32_t topic_len, int opcode,
                        const uint8_t *data, int32_t len, int flags);

/* On L: a pub/sub piece from queue_out (subscribe, unsubscribe, publish);
 * the caller frees it. */
void ymo__websocket_topic_out(ymo_conns_t *c, ymo_out_t *out);

extern const ymo_protocol_t ymo__websocket;

/* On L, when the 101 piece of ex reaches its session s: from now on s
 * speaks WebSocket, starting with the bytes http1.c kept after the
 * handshake. */
void ymo__websocket_switch(ymo_session_t *s, ymo_exchange_t *ex);
/* On L, for each piece JS sent a WebSocket session: false when it must be
 * dropped (data after a close frame). */
bool ymo__websocket_out(ymo_session_t *s, const ymo_out_t *out);
/* On L, in place of the HTTP timer states: the idle timeout, or the wait
 * for the client's close frame. */
void ymo__websocket_arm_timer(ymo_session_t *s);

/* http1.c, at the end of a request head that asks to upgrade: whether it is
 * a valid WebSocket opening handshake (1), asks for WebSocket with a version
 * other than 13 (426, answered by L), or is something else (0). */
int ymo__websocket_handshake_check(const ymo_exchange_t *ex,
                                   const uint8_t *method, size_t method_len,
                                   int http_major, int http_minor);

#endif /* YMO_WEBSOCKET_H */
