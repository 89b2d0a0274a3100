/* Layer 5, a protocol: HTTP/1.1 on a connection. Its parsing half
 * (http1_parser.c) records what llhttp finds and pauses on verdicts; this
 * file runs the parser over what was read and acts on each verdict after
 * llhttp_execute() returns (hand the request to a static route or the
 * worker, queue a piece of a streamed body, answer 100 Continue or an
 * error), pauses and resumes reading for pipelining and upload
 * backpressure, and fills the protocol table the connection core calls.
 * Everything in this file runs on L. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "websocket.h"

static bool parse(ymo_session_t *s, const uint8_t *data, size_t len);
static bool add_pending(ymo_session_t *s, const uint8_t *data, size_t len);
static void http1_eof(ymo_session_t *s);
static void set_error_response(ymo_session_t *s, ymo_exchange_t *ex,
                               int status);

/* ------------------------------------------------------------------------ */
/* Acting on verdicts.                                                      */

/* Interim 100 only to HTTP/1.1 clients, and only when it cannot overtake
 * an earlier response on the wire. */
static void send_continue(ymo_session_t *s) {
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  s->http1.req.continue_owed = false;
  ymo__conn_send_now(s, cont, sizeof(cont) - 1);
}

/* The static route for a GET or HEAD request, if one matches its target. */
static const ymo_static_route_t *static_route_for(ymo_session_t *s,
                                                  ymo_exchange_t *ex) {
  ymo_http1_request_t *ps = &s->http1.req;
  const uint8_t *method = ymo__record_method(ex);
  bool get = ps->method_len == 3 && memcmp(method, "GET", 3) == 0;
  if (!get && !(ex->req_flags & YMO_REQF_HEAD)) return NULL;
  return ymo__routes_pick(ymo__routes_find(s->conns->routes,
                                           method + ps->method_len,
                                           ps->url_len),
                          ex);
}

/* Makes out the whole of ex's response, written by L. */
static void set_local_out(ymo_exchange_t *ex, ymo_out_t *out, bool close) {
  ymo__exchange_ref(ex); /* The piece's reference. */
  ex->local = true;
  ex->out_head = ex->out_tail = out;
  atomic_fetch_add(&ex->unwritten, (long long)out->len);
  ex->response_done = true;
  ex->close_after = close;
}

/* Answers ex from a static route, on L: the response goes in the FIFO like
 * any other, so pipelined order holds; it is written after the parse. */
static bool answer_static(ymo_session_t *s, ymo_exchange_t *ex,
                          const ymo_static_route_t *route) {
  ymo_response_t r = {
      .status = route->status,
      .fields = route->headers,
      .fields_len = route->headers_len,
      .body = route->body,
      .body_len = route->body_len,
      .done = true,
      .head = ex->req_flags & YMO_REQF_HEAD,
      .http10 = ex->http_minor == 0,
      .close = !(ex->req_flags & YMO_REQF_KEEPALIVE) ||
               atomic_load(s->conns->draining),
      .keepalive_ms = YMO_OPT(s->conns, KEEPALIVE_TIMEOUT_MS),
  };
  ymo_out_t *out;
  if (ymo__response_start(&r, &s->conns->date, ex, &out) != 0) return false;
  set_local_out(ex, out, r.close);
  s->http1.flush_owed = true;
  return true;
}

/* Puts ex in the connection's FIFO and gives it to a static route or to the
 * worker. Returns 0, or an llhttp error code. */
static int hand_off(ymo_session_t *s, ymo_exchange_t *ex) {
  ymo__conn_fifo_push(s, ex);
  /* A static route answers only a request without a body: one with a body
   * goes to JS however its bytes arrive (whole with the head, or streamed
   * after it), so how TCP splits a request never changes who answers. */
  const ymo_static_route_t *route =
      s->conns->routes->n_routes > 0 && !s->http1.req.has_body
          ? static_route_for(s, ex)
          : NULL;
  if (route != NULL) {
    if (!answer_static(s, ex, route)) return ymo__http1_fail(s, 503);
  } else if (ymo__worker_add_exchange(s->worker, ex) != 0) {
    /* Cannot queue it: it stays in the FIFO, answered by nothing, and a 503
     * follows it so earlier responses keep their order. */
    ex->response_done = true;
    return ymo__http1_fail(s, 503);
  }
  return 0;
}

static bool finish_record(ymo_session_t *s, ymo_exchange_t *ex) {
  return ymo__record_finish(ex, s->http1.req.method_len, s->http1.req.url_len,
                            &s->peer);
}

/* After a read: a request whose head is complete but whose body is still
 * coming goes to JS now, with what came so far; the rest follows as body
 * records (ymo_worker_take). The handler runs as soon as the head is there,
 * as with Deno.serve: a duplex handler can answer piece by piece, a slow
 * client is not held to one deadline for its whole body, and an upload
 * never sits whole in memory. A body that came whole in the same read as
 * its head was handed over with it already (act_on_message), without this
 * extra record. */
static int stream_body(ymo_session_t *s) {
  ymo_exchange_t *ex = s->cur;
  llhttp_t *parser = &s->http1.parser;
  if (ex == NULL || ex->streaming || !s->http1.req.in_trailers) return 0;
  if (llhttp_should_keep_alive(parser)) ex->req_flags |= YMO_REQF_KEEPALIVE;
  ex->req_flags |= YMO_REQF_STREAM;
  ex->streaming = true;
  ymo__exchange_ref(ex); /* s->cur keeps one while the body comes. */
  if (!finish_record(s, ex)) return ymo__http1_fail(s, 503);
  /* From the head on, the timer bounds the gap between body pieces. */
  s->timer_state = YMO_TIMER_OFF;
  return hand_off(s, ex);
}

/* A piece of a streamed body: unless the request was answered already
 * (when the bytes are only read past), it goes to JS. */
static int act_on_body(ymo_session_t *s) {
  ymo_exchange_t *ex = s->cur;
  if (!ex->response_done &&
      ymo__worker_add_body(ex->worker, ex, s->http1.body_at,
                           s->http1.body_piece, false) != 0)
    return ymo__http1_fail(s, 503);
  s->timer_state = YMO_TIMER_OFF; /* Progress: restart the body timer. */
  return 0;
}

/* A request is complete. Returns 0 to parse on, HPE_PAUSED to stop (the
 * client sends no more, or the pipeline is full), or HPE_USER. */
static int act_on_message(ymo_session_t *s) {
  ymo_exchange_t *ex = s->cur;
  bool keepalive = s->http1.keepalive;
  bool upgrade = s->http1.upgrade;
  s->http1.req.continue_owed = false;
  if (ex->streaming) {
    /* The head and the body so far went to JS already: end the body. */
    s->cur = NULL;
    int err = ex->response_done
                  ? 0
                  : ymo__worker_add_body(ex->worker, ex, NULL, 0, true);
    ymo__exchange_unref(ex); /* s->cur's reference. */
    if (err != 0) return ymo__http1_fail(s, 503);
  } else {
    /* An Upgrade ymo does not switch for ends the connection after the
     * response (the client may send the new protocol next), so the
     * response says Connection: close. */
    if (keepalive && !upgrade) ex->req_flags |= YMO_REQF_KEEPALIVE;
    if (upgrade) {
      int ws = ymo__websocket_handshake_check(
          ex, ymo__record_method(ex), s->http1.req.method_len,
          s->http1.parser.http_major, s->http1.parser.http_minor);
      if (ws == 426) return ymo__http1_fail(s, 426);
      if (ws == 1) {
        /* JS may accept it: what follows the head is WebSocket's. */
        ex->req_flags |= YMO_REQF_UPGRADE;
        s->http1.keep_rest = true;
      }
    }
    if (!finish_record(s, ex)) return ymo__http1_fail(s, 503);
    s->cur = NULL;
    int err = hand_off(s, ex);
    if (err != 0) return err;
  }
  ymo__conn_arm_timer(s);
  if (!keepalive || upgrade) {
    s->no_more_requests = true;
    return HPE_PAUSED;
  }
  if (s->fifo_len >= YMO_OPT(s->conns, MAX_PIPELINE)) return HPE_PAUSED;
  return 0;
}

/* A quoted-pair's backslash (see http1_parser.c): llhttp goes on inside
 * the quoted value, after the escaped byte at *pos (in the next read when
 * the backslash ended this one). */
static int act_on_escape(ymo_session_t *s, const char **pos) {
  if (!ymo__http1_ext_requote(&s->http1.parser))
    return ymo__http1_fail(s, 400);
  if (*pos == s->http1.exec_end) {
    s->http1.req.ext_escape_pending = true;
    return 0;
  }
  if (!ymo__http1_quoted_pair_ok((uint8_t)**pos))
    return ymo__http1_fail(s, 400);
  (*pos)++;
  return 0;
}

/* Acts on the verdict the parser paused for; *pos is where llhttp resumes,
 * which an act may move. Returns 0 to resume, or what parse() is to treat
 * as llhttp_execute's result. */
static int act(ymo_session_t *s, const char **pos) {
  int verdict = s->http1.verdict;
  s->http1.verdict = YMO_HTTP1_NONE;
  switch (verdict) {
    case YMO_HTTP1_EXT_SEMICOLON:
      (*pos)--; /* llhttp took the ";" that starts the next extension. */
      return 0;
    case YMO_HTTP1_EXT_ESCAPE:
      return act_on_escape(s, pos);
    case YMO_HTTP1_CONTINUE:
      if (s->fifo_len == 0)
        send_continue(s);
      else
        s->http1.req.continue_owed = true; /* Sent by flushed(). */
      return 0;
    case YMO_HTTP1_BODY:
      return act_on_body(s);
    case YMO_HTTP1_MESSAGE:
      return act_on_message(s);
    default:
      return HPE_PAUSED; /* A pause nobody asked for: stop. */
  }
}

/* ------------------------------------------------------------------------ */
/* Errors, pausing and resuming.                                            */

/* Queue a response made by L itself (an error) behind the earlier ones, and
 * read nothing more from this client. */
static void respond_local(ymo_session_t *s, int status) {
  ymo_exchange_t *ex = s->cur;
  if (ex != NULL && ex->streaming) {
    /* JS has this request and its half-read body. If it has sent nothing
     * yet, the error answers the request in its place (JS sees an abort
     * and what it sends later is dropped); otherwise the connection ends. */
    ymo__worker_drain(ex->worker);
    if (s->closed) return;
    if (ex->answer_started || ex->out_head != NULL || ex->response_done) {
      ymo__conn_close(s);
      return;
    }
    atomic_store_explicit(&ex->aborted, 1, memory_order_release);
    ymo__worker_add_abort(ex->worker, ex);
    s->cur = NULL;
    ymo__exchange_unref(ex); /* s->cur's reference; the FIFO keeps one. */
    s->no_more_requests = true;
    ymo__conn_stop_reading(s);
    set_error_response(s, ex, status);
    ymo__conn_flush(s);
    return;
  }
  s->cur = NULL;
  if (ex != NULL) ymo__exchange_unref(ex);
  s->no_more_requests = true;
  ymo__conn_stop_reading(s);
  ex = ymo__exchange_new(NULL, NULL, s, false);
  if (ex == NULL) {
    ymo__conn_close(s);
    return;
  }
  ymo__conn_fifo_push(s, ex);
  set_error_response(s, ex, status);
  ymo__conn_flush(s);
}

/* Makes ex, already in the FIFO, answered by L with its canned error page
 * and a close. */
static void set_error_response(ymo_session_t *s, ymo_exchange_t *ex,
                               int status) {
  ymo_response_t r = {.done = true, .close = true};
  ymo__response_canned(&r, status);
  /* L's 426 is only ever for a WebSocket version it does not speak (RFC
   * 6455 section 4.4): it names the one it does. */
  char fields[256];
  if (status == 426) {
    int n = snprintf(fields, sizeof(fields), "%.*sSec-WebSocket-Version: 13\r\n",
                     (int)r.fields_len, (const char *)r.fields);
    if (n > 0 && (size_t)n < sizeof(fields)) {
      r.fields = (const uint8_t *)fields;
      r.fields_len = (size_t)n;
    }
  }
  ymo_out_t *out;
  ex->local = true;
  ex->response_done = true;
  ex->close_after = true;
  if (ymo__response_start(&r, &s->conns->date, ex, &out) != 0)
    return; /* Out of memory: it just closes. */
  set_local_out(ex, out, true);
}

static void resume_parsing(ymo_session_t *s) {
  ymo_http1_t *h = &s->http1;
  if (!h->paused || s->no_more_requests) return;
  h->paused = false;
  llhttp_resume(&h->parser);
  uint8_t *data = h->pending;
  size_t len = h->pending_len;
  h->pending = NULL;
  h->pending_len = 0;
  bool alive = len == 0 || parse(s, data, len);
  free(data);
  if (alive && !h->paused && !s->no_more_requests) {
    if (s->read_eof)
      http1_eof(s); /* The client's FIN came after these bytes. */
    else
      ymo__conn_start_reading(s);
  }
}

/* Stops reading while JS holds more of the current body than it has read
 * (backpressure for uploads). Whoever clears want_resume resumes: this
 * thread here if JS caught up meanwhile, else ymo_worker_body_ack(). */
static void pause_for_body(ymo_session_t *s) {
  ymo_exchange_t *ex = s->cur;
  if (ex == NULL || !ex->streaming || ex->response_done ||
      atomic_load(&ex->body_unacked) <= YMO_BODY_HIGH_WATER)
    return;
  atomic_store(&ex->want_resume, 1);
  if (atomic_load(&ex->body_unacked) <= YMO_BODY_LOW_WATER &&
      atomic_exchange(&ex->want_resume, 0))
    return;
  ymo__conn_stop_reading(s);
  s->timer_state = YMO_TIMER_HEAD; /* Let arm_timer() switch it off. */
  ymo__conn_arm_timer(s);
}

/* Runs llhttp over [from, to) and acts on each verdict it pauses for,
 * resuming after each. Returns llhttp's last result, or what an act asked
 * for; on HPE_PAUSED, llhttp_get_error_pos() says where parsing stopped. */
static llhttp_errno_t execute(ymo_session_t *s, const char *from,
                              const char *to) {
  ymo_http1_t *h = &s->http1;
  if (h->req.ext_escape_pending && from < to) {
    /* A quoted-pair whose backslash ended the last read. */
    h->req.ext_escape_pending = false;
    if (!ymo__http1_quoted_pair_ok((uint8_t)*from))
      return (llhttp_errno_t)ymo__http1_fail(s, 400);
    from++;
    h->exec_start = from;
  }
  llhttp_errno_t err = llhttp_execute(&h->parser, from, (size_t)(to - from));
  /* A request that began in this buffer is timed from now. */
  ymo__conn_arm_timer(s);
  while (err == HPE_PAUSED && h->verdict != YMO_HTTP1_NONE) {
    const char *pos = llhttp_get_error_pos(&h->parser);
    int next = act(s, &pos);
    if (next != 0) return (llhttp_errno_t)next;
    llhttp_resume(&h->parser);
    h->exec_start = pos;
    err = llhttp_execute(&h->parser, pos, (size_t)(to - pos));
    ymo__conn_arm_timer(s);
  }
  return err;
}

/* Parses data; returns false when the session was closed. */
static bool parse_now(ymo_session_t *s, const uint8_t *data, size_t len) {
  ymo_http1_t *h = &s->http1;
  h->exec_start = (const char *)data;
  h->exec_end = (const char *)data + len;
  h->req.span_end = NULL; /* Pointers into an earlier buffer mean nothing. */
  llhttp_errno_t err = execute(s, h->exec_start, h->exec_end);
  if (err == HPE_OK && s->cur != NULL && !h->req.in_trailers) {
    /* A head still coming: check the line ends read so far, carrying the
     * state to the next read. */
    if (!ymo__http1_head_lines_ok(s)) {
      respond_local(s, 400);
      return false;
    }
  }
  if (h->flush_owed && err != HPE_USER) {
    /* Static responses queued by the parse: write them now that llhttp is
     * done with this session's state. */
    h->flush_owed = false;
    ymo__conn_flush(s);
    if (s->closed) return false;
  }
  if (err == HPE_OK) {
    if (stream_body(s) != 0) {
      respond_local(s, h->error_status ? h->error_status : 503);
      return false;
    }
    pause_for_body(s);
    if (s->timer_state == YMO_TIMER_OFF) ymo__conn_arm_timer(s);
    return true;
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    ymo__conn_stop_reading(s);
    if (s->no_more_requests || err == HPE_PAUSED_UPGRADE) {
      s->no_more_requests = true;
      /* After a WebSocket handshake, the bytes past it wait for the
       * switch (websocket.c); after anything else they are never read. */
      if (h->keep_rest) {
        const uint8_t *pos =
            (const uint8_t *)llhttp_get_error_pos(&h->parser);
        if (pos != NULL && pos >= data && pos < data + len &&
            !add_pending(s, pos, (size_t)(data + len - pos)))
          return false;
      }
      /* Every response may be out already (a streamed request answered
       * before its trailers said Connection: close): nothing is left to
       * wait for, and no flush will come to close. */
      if (s->fifo_head == NULL) {
        ymo__conn_close(s);
        return false;
      }
      return true;
    }
    const uint8_t *pos = (const uint8_t *)llhttp_get_error_pos(&h->parser);
    size_t rest = (size_t)(data + len - pos);
    h->paused = true;
    if (rest > 0) {
      h->pending = malloc(rest);
      if (h->pending == NULL) {
        ymo__conn_close(s);
        return false;
      }
      memcpy(h->pending, pos, rest);
      h->pending_len = rest;
    }
    /* The responses may all be written already (a fast handler). */
    if (s->fifo_len < YMO_OPT(s->conns, MAX_PIPELINE)) {
      resume_parsing(s);
      return !s->closed;
    }
    return true;
  }
  /* Any callback that failed set the status; the error code llhttp returns
   * depends on which callback it was. */
  int status = h->error_status ? h->error_status : 400;
  respond_local(s, status);
  return false;
}

/* Adds data to the unparsed bytes a paused parser keeps. */
static bool add_pending(ymo_session_t *s, const uint8_t *data, size_t len) {
  ymo_http1_t *h = &s->http1;
  uint8_t *p = realloc(h->pending, h->pending_len + len);
  if (p == NULL) {
    ymo__conn_close(s);
    return false;
  }
  memcpy(p + h->pending_len, data, len);
  h->pending = p;
  h->pending_len += len;
  return true;
}

/* Parses data, first holding back SP and HTAB that end it inside a head.
 * on_header_field_complete() (http1_parser.c) turns the HTAB of a value's
 * trailing OWS into SP before llhttp reads it, which it can only do when
 * the line's CR is in the same buffer: so a head read cut inside that OWS
 * keeps the run for the next read, and a line is judged the same however
 * it arrives. A head is never complete without more bytes, so nothing
 * waits on what is held. Returns false when the session was closed. */
static bool parse(ymo_session_t *s, const uint8_t *data, size_t len) {
  ymo_http1_t *h = &s->http1;
  if (h->ows_held_len > 0) {
    size_t n = h->ows_held_len + len;
    uint8_t *joined = malloc(n);
    if (joined == NULL) {
      ymo__conn_close(s);
      return false;
    }
    memcpy(joined, h->ows_held, h->ows_held_len);
    memcpy(joined + h->ows_held_len, data, len);
    h->ows_held_len = 0;
    bool alive = parse(s, joined, n);
    free(joined);
    return alive;
  }
  if (h->req.ows_lookahead && s->cur != NULL && !h->req.in_trailers)
    ymo__http1_value_ows(s, (uint8_t *)data, (uint8_t *)data + len);
  size_t run = 0;
  while (run < len && run < sizeof(h->ows_held) &&
         (data[len - 1 - run] == ' ' || data[len - 1 - run] == '\t'))
    run++;
  if (run == 0 || run == sizeof(h->ows_held)) return parse_now(s, data, len);
  if (run < len && !parse_now(s, data, len - run)) return false;
  const uint8_t *tail = data + len - run;
  if (s->no_more_requests) /* Nothing more is parsed. */
    return h->keep_rest ? add_pending(s, tail, run) : true;
  if (h->paused) return add_pending(s, tail, run);
  if (s->cur != NULL && !h->req.in_trailers) {
    memcpy(h->ows_held, tail, run);
    h->ows_held_len = run;
    return true;
  }
  return parse_now(s, tail, run);
}

/* ------------------------------------------------------------------------ */
/* The protocol table.                                                      */

static void http1_open(ymo_session_t *s) {
  llhttp_init(&s->http1.parser, HTTP_REQUEST, ymo__http1_settings());
  s->http1.parser.data = s;
}

static bool http1_data(ymo_session_t *s, const uint8_t *data, size_t len) {
  return parse(s, data, len);
}

static bool http1_flushed(ymo_session_t *s) {
  /* The 100 Continue owed to a streamed request goes out once every
   * response ahead of it is written, unless JS has begun to answer it. */
  ymo_exchange_t *cur = s->cur;
  if (cur != NULL && s->http1.req.continue_owed &&
      s->http1.req.body_len == 0 &&
      (s->fifo_head == NULL ||
       (s->fifo_head == cur && !cur->answer_started)))
    send_continue(s);
  if (s->fifo_head == NULL && s->no_more_requests) {
    ymo__conn_close(s);
    return false;
  }
  if (s->http1.paused && s->fifo_len < YMO_OPT(s->conns, MAX_PIPELINE)) {
    resume_parsing(s);
    if (s->closed) return false;
  }
  return true;
}

static void http1_resume(ymo_session_t *s) {
  if (s->closed || s->http1.paused || s->no_more_requests) return;
  ymo__conn_start_reading(s);
  s->timer_state = YMO_TIMER_OFF;
  ymo__conn_arm_timer(s);
}

/* A head that did not come in time, or a body that stopped coming, gets
 * 408 and a close (respond_local closes instead when JS has begun its
 * answer); an idle or otherwise stuck connection is just closed. */
/* End of stream from the client. A request cut short (a head or a body
 * still coming) can never complete: close, which aborts JS's exchange.
 * Otherwise every request read so far is answered, in order, and the
 * connection closes after the last (http1_flushed). Reading stopped while
 * the parser was paused, so no unparsed bytes are left here. */
static void http1_eof(ymo_session_t *s) {
  if (s->http1.paused) return; /* resume_parsing() comes back here. */
  if (s->cur != NULL) {
    ymo__conn_close(s);
    return;
  }
  s->no_more_requests = true;
  if (s->fifo_head == NULL) ymo__conn_close(s);
}

static void http1_timeout(ymo_session_t *s) {
  if (s->timer_state == YMO_TIMER_FLIGHT) {
    /* The handler's own idle timeout: its request is given up. */
    ymo__conn_close(s);
    return;
  }
  ymo_exchange_t *ex = s->cur;
  bool receiving = ex != NULL && s->http1.head_bytes > 0 &&
                   (ex->streaming || s->fifo_len == 0);
  if (receiving)
    respond_local(s, 408);
  else
    ymo__conn_close(s);
}

static void http1_drain(ymo_session_t *s) {
  if (s->fifo_len == 0 && (s->cur == NULL || s->http1.head_bytes == 0)) {
    ymo__conn_close(s);
  } else {
    s->no_more_requests = true;
    ymo__conn_stop_reading(s);
  }
}

static void http1_close(ymo_session_t *s) {
  free(s->http1.pending);
  s->http1.pending = NULL;
}

const ymo_protocol_t ymo__http1 = {
    .open = http1_open,
    .data = http1_data,
    .eof = http1_eof,
    .flushed = http1_flushed,
    .resume = http1_resume,
    .timeout = http1_timeout,
    .drain = http1_drain,
    .close = http1_close,
};
