/* Layer 5, L's half of WebSocket (websocket.h): the protocol table a session
 * switches to once its 101 is on the way, the handshake check http1.c asks
 * for, and the closing handshake. Everything here runs on L. */
#include <stdlib.h>
#include <string.h>

#include "websocket.h"

/* How long L waits for the client's close frame after sending its own. */
#define CLOSE_WAIT_S 5.0

/* ------------------------------------------------------------------------ */
/* The opening handshake, judged when the request head is complete.        */

int ymo__websocket_handshake_check(const ymo_exchange_t *ex,
                                   const uint8_t *method, size_t method_len,
                                   int http_major, int http_minor) {
  bool connection = false, upgrade = false, version = false, key = false;
  bool version_seen = false;
  for (size_t at = ymo__record_field_next(ex, 0); at != 0;
       at = ymo__record_field_next(ex, at)) {
    const char *name, *value;
    uint32_t name_len, value_len;
    ymo__record_field_get(ex, at, &name, &name_len, &value, &value_len);
    if (ymo__field_name_is(name, name_len, "connection"))
      connection = connection || ymo__ws_check_connection(value, value_len);
    else if (ymo__field_name_is(name, name_len, "upgrade"))
      upgrade = upgrade || ymo__ws_check_upgrade(value, value_len);
    else if (ymo__field_name_is(name, name_len, "sec-websocket-version")) {
      /* Repeated, it is no valid version (RFC 6455 section 4.1). */
      version = !version_seen && ymo__ws_check_version(value, value_len);
      version_seen = true;
    } else if (ymo__field_name_is(name, name_len, "sec-websocket-key"))
      key = !key && ymo__ws_check_key(value, value_len);
  }
  if (!upgrade || !connection) return 0;
  bool get = method_len == 3 && memcmp(method, "GET", 3) == 0;
  if (!get || http_major != 1 || http_minor != 1) return 0;
  /* RFC 6455 section 4.4: a version the server does not speak is answered
   * 426 with the versions it does. */
  if (version_seen && !version) return 426;
  return version && key ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Frames L writes itself: pongs and close frames.                          */

/* Queues bytes behind what the socket's exchange has to write: into L's
 * last piece of frames when it has room (a subscriber gets several
 * publishes in one piece and one iovec), else a new one from L's pool. */
static bool queue_frame(ymo_session_t *s, const uint8_t *data, size_t len) {
  ymo_exchange_t *ex = s->ws->ex;
  ymo_out_t *tail = ex->out_tail;
  if (tail != NULL && (tail->flags & YMO__OUT_WS_FRAMES) &&
      tail->cap - tail->len >= len) {
    memcpy(tail->data + tail->len, data, len);
    tail->len += len;
    atomic_fetch_add_explicit(&ex->unwritten, (long long)len,
                              memory_order_relaxed);
    return true;
  }
  ymo_out_t *out = ymo__out_new_in(&s->conns->ws_frames, ex, len,
                                   YMO__OUT_WS_FRAMES);
  if (out == NULL) return false;
  memcpy(out->data, data, len);
  ymo__exchange_ref(ex);
  atomic_fetch_add_explicit(&ex->unwritten, (long long)len,
                            memory_order_relaxed);
  if (ex->out_tail != NULL)
    ex->out_tail->next = out;
  else
    ex->out_head = out;
  ex->out_tail = out;
  return true;
}

/* A published frame for one subscriber: behind its output, written with
 * the rest of the drain (the flush list). */
typedef struct {
  const uint8_t *frame;
  size_t len;
  ymo_session_t *sender; /* Skipped, or NULL. */
} publication_t;

static void publish_to(ymo_session_t *s, void *arg) {
  const publication_t *p = arg;
  if (s == p->sender || s->ws->close_sent) return;
  if (!queue_frame(s, p->frame, p->len)) return; /* Out of memory: lost. */
  ymo_conns_t *c = s->conns;
  if (!s->flush_listed) {
    s->flush_listed = true;
    s->flush_next = c->to_flush;
    c->to_flush = s;
  }
}

void ymo__websocket_topic_out(ymo_conns_t *c, ymo_out_t *out) {
  ymo_exchange_t *ex = out->exchange;
  ymo_session_t *s = ex != NULL ? ex->session : NULL;
  if (out->flags & YMO__OUT_WS_PUBLISH) {
    if (out->len < YMO__PUBLISH_HEAD) return;
    size_t topic_len = (size_t)out->data[1] | (size_t)out->data[2] << 8;
    if (YMO__PUBLISH_HEAD + topic_len > out->len) return;
    publication_t p = {
        .frame = out->data + YMO__PUBLISH_HEAD + topic_len,
        .len = out->len - YMO__PUBLISH_HEAD - topic_len,
        .sender = (out->data[0] & YMO__PUBLISH_SELF) ? NULL : s,
    };
    ymo__topics_each(c, out->data + YMO__PUBLISH_HEAD, topic_len, publish_to,
                     &p);
    return;
  }
  if (s == NULL || s->closed || s->ws == NULL) return;
  if (out->flags & YMO__OUT_WS_SUBSCRIBE)
    ymo__topics_subscribe(c, s, out->data, out->len);
  else
    ymo__topics_unsubscribe(c, s, out->data, out->len);
}

/* Sends a close frame once (code 0: none) and closes the connection when
 * the client's close has come too, or after CLOSE_WAIT_S. */
static void send_close(ymo_session_t *s, int code) {
  ymo_ws_conn_t *ws = s->ws;
  if (!ws->close_sent) {
    uint8_t frame[YMO_WS_CONTROL_FRAME_MAX];
    int n = ymo__ws_close_frame(frame, code, NULL, 0);
    ws->close_sent = true;
    if (n < 0 || !queue_frame(s, frame, (size_t)n)) ws->closing = true;
  }
  if (ws->close_received) ws->closing = true;
  ymo__websocket_arm_timer(s);
}

/* Hands a message, or a close's code and reason, to JS. */
static bool to_js(ymo_session_t *s, int opcode, const uint8_t *data,
                  size_t len) {
  ymo_exchange_t *ex = s->ws->ex;
  return ymo__worker_add_ws(ex->worker, ex, opcode, data, len) == 0;
}

/* The client's close frame, or a protocol error (code to send, no reason):
 * JS hears of it, the close is answered, and nothing more is read. */
static void closed_by_client(ymo_session_t *s, int code, const uint8_t *reason,
                             size_t reason_len, bool error) {
  ymo_ws_conn_t *ws = s->ws;
  ws->close_received = true;
  ymo__conn_stop_reading(s);
  uint8_t payload[2 + YMO_WS_CONTROL_MAX];
  size_t n = 0;
  if (code != YMO_WS_CLOSE_NO_STATUS) {
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    n = 2;
  }
  if (reason_len > YMO_WS_CONTROL_MAX - 2) reason_len = YMO_WS_CONTROL_MAX - 2;
  if (reason_len > 0) memcpy(payload + n, reason, reason_len);
  to_js(s, YMO_WS_OP_CLOSE, payload, n + reason_len);
  /* Echo the client's code (RFC 6455 section 5.5.1); none for none. */
  send_close(s, error ? code : code == YMO_WS_CLOSE_NO_STATUS ? 0 : code);
  ymo__conn_flush(s);
}

/* ------------------------------------------------------------------------ */
/* The protocol table.                                                      */

static void ws_open(ymo_session_t *s) { (void)s; }

/* Stops reading while JS has more than YMO_BODY_HIGH_WATER of messages
 * unread, as for a request body (ymo_worker_body_ack resumes). */
static void pause_for_js(ymo_session_t *s) {
  ymo_exchange_t *ex = s->ws->ex;
  if (atomic_load(&ex->body_unacked) <= YMO_BODY_HIGH_WATER) return;
  atomic_store(&ex->want_resume, 1);
  if (atomic_load(&ex->body_unacked) <= YMO_BODY_LOW_WATER &&
      atomic_exchange(&ex->want_resume, 0))
    return;
  ymo__conn_stop_reading(s);
}

static bool ws_data(ymo_session_t *s, const uint8_t *data, size_t len) {
  ymo_ws_conn_t *ws = s->ws;
  if (ws->close_received) return true;
  ws->pinged = false;
  if (!ws->close_sent) ymo__websocket_arm_timer(s); /* Idle from now. */
  bool wrote = false;
  for (;;) {
    size_t used;
    ymo_ws_event_t ev;
    int type = ymo__ws_parse(&ws->parser, data, len, &used, &ev);
    data += used;
    len -= used;
    switch (type) {
      case YMO_WS_EV_NEED_MORE:
        if (wrote) ymo__conn_flush(s);
        if (s->closed) return false;
        pause_for_js(s);
        return true;
      case YMO_WS_EV_TEXT:
      case YMO_WS_EV_BINARY:
        /* After its close frame, the server drops what comes in. */
        if (ws->close_sent) break;
        if (!to_js(s, type == YMO_WS_EV_TEXT ? YMO_WS_OP_TEXT
                                             : YMO_WS_OP_BINARY,
                   ev.data, ev.len)) {
          closed_by_client(s, YMO_WS_CLOSE_INTERNAL, NULL, 0, true);
          return !s->closed;
        }
        break;
      case YMO_WS_EV_PING: {
        if (ws->close_sent) break;
        uint8_t frame[YMO_WS_CONTROL_FRAME_MAX];
        int n = ymo__ws_control_frame(frame, YMO_WS_OP_PONG, ev.data, ev.len);
        if (n > 0 && queue_frame(s, frame, (size_t)n)) wrote = true;
        to_js(s, YMO_WS_OP_PING, ev.data, ev.len);
        break;
      }
      case YMO_WS_EV_PONG:
        if (!ws->close_sent) to_js(s, YMO_WS_OP_PONG, ev.data, ev.len);
        break;
      case YMO_WS_EV_CLOSE:
        closed_by_client(s, ev.code, ev.data, ev.len, false);
        return !s->closed;
      default: /* YMO_WS_EV_ERROR */
        closed_by_client(s, ev.code, NULL, 0, true);
        return !s->closed;
    }
  }
}

/* The client's FIN: after a close handshake the end; without one the
 * connection is gone (JS sees 1006). */
static void ws_eof(ymo_session_t *s) { ymo__conn_close(s); }

static bool ws_flushed(ymo_session_t *s) {
  if (s->ws->closing) {
    ymo__conn_close(s);
    return false;
  }
  return true;
}

static void ws_resume(ymo_session_t *s) {
  if (!s->ws->close_received) ymo__conn_start_reading(s);
}

/* Idle too long (nothing read), or no close frame came back in time. With
 * WS_SEND_PINGS the first idle timeout sends a ping instead: a client that
 * answers (anything read) is not idle. */
static void ws_timeout(ymo_session_t *s) {
  if (s->ws->close_sent) {
    ymo__conn_close(s);
    return;
  }
  if (YMO_OPT(s->conns, WS_SEND_PINGS) && !s->ws->pinged) {
    uint8_t frame[YMO_WS_CONTROL_FRAME_MAX];
    int n = ymo__ws_control_frame(frame, YMO_WS_OP_PING, NULL, 0);
    if (n > 0 && queue_frame(s, frame, (size_t)n)) {
      s->ws->pinged = true;
      ymo__websocket_arm_timer(s);
      ymo__conn_flush(s);
      return;
    }
  }
  s->ws->closing = true;
  send_close(s, YMO_WS_CLOSE_GOING_AWAY);
  ymo__conn_flush(s);
}

/* Graceful shutdown: 1001, then the client's close (or the wait's end). */
static void ws_drain(ymo_session_t *s) {
  send_close(s, YMO_WS_CLOSE_GOING_AWAY);
  ymo__conn_flush(s);
}

static void ws_close(ymo_session_t *s) {
  ymo__topics_leave_all(s->conns, s);
  ymo__ws_parser_free(&s->ws->parser);
  free(s->ws);
  s->ws = NULL;
}

const ymo_protocol_t ymo__websocket = {
    .open = ws_open,
    .data = ws_data,
    .eof = ws_eof,
    .flushed = ws_flushed,
    .resume = ws_resume,
    .timeout = ws_timeout,
    .drain = ws_drain,
    .close = ws_close,
};

/* ------------------------------------------------------------------------ */
/* The switch, and what JS sends.                                           */

void ymo__websocket_arm_timer(ymo_session_t *s) {
  ymo_ws_conn_t *ws = s->ws;
  struct ev_loop *loop = s->conns->loop;
  double after;
  if (ws->close_sent)
    after = CLOSE_WAIT_S;
  else if (YMO_OPT(s->conns, WS_IDLE_TIMEOUT_MS) > 0)
    after = (double)YMO_OPT(s->conns, WS_IDLE_TIMEOUT_MS) / 1000.0;
  else {
    ev_timer_stop(loop, &s->timer);
    return;
  }
  /* The close wait is not pushed back by what the client keeps sending. */
  if (ws->close_sent && ev_is_active(&s->timer) &&
      s->timer_state == YMO_TIMER_FLIGHT)
    return;
  s->timer_state = ws->close_sent ? YMO_TIMER_FLIGHT : YMO_TIMER_IDLE;
  s->timer.repeat = after;
  ev_timer_again(loop, &s->timer);
}

void ymo__websocket_switch(ymo_session_t *s, ymo_exchange_t *ex) {
  ymo_ws_conn_t *ws = calloc(1, sizeof(*ws));
  if (ws == NULL) {
    ymo__conn_close(s);
    return;
  }
  ws->ex = ex;
  const ymo_ws_link_t *link = ymo__ws_link(ex);
  ymo__ws_parser_init(&ws->parser,
                      (size_t)YMO_OPT(s->conns, WS_MAX_MESSAGE),
                      link->deflate.enabled ? &link->deflate : NULL);
  /* What the client sent after its handshake, kept by http1.c. */
  uint8_t *early = s->http1.pending;
  size_t early_len = s->http1.pending_len;
  s->http1.pending = NULL;
  s->http1.pending_len = 0;
  s->protocol->close(s);
  s->protocol = &ymo__websocket;
  s->ws = ws;
  s->timer_state = YMO_TIMER_OFF;
  ymo__websocket_arm_timer(s);
  bool alive = early_len == 0 || ws_data(s, early, early_len);
  free(early);
  if (!alive || ws->close_received) return;
  if (s->read_eof)
    ws_eof(s);
  else
    ymo__conn_start_reading(s);
}

bool ymo__websocket_out(ymo_session_t *s, const ymo_out_t *out) {
  ymo_ws_conn_t *ws = s->ws;
  if (!(out->flags & YMO__OUT_WS_CLOSE)) return !ws->close_sent;
  if (ws->close_sent) return false; /* L answered the client's first. */
  ws->close_sent = true;
  if (ws->close_received) ws->closing = true;
  ymo__websocket_arm_timer(s);
  return true;
}
