/* Connections on the loop thread L: reading and parsing requests with llhttp,
 * handing complete requests to the session's worker, and writing responses in
 * request order. Everything in this file runs on L. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ymo_internal.h"

#define READ_BUF_SIZE 65536
#define MAX_IOV 64

enum timer_state { TIMER_OFF, TIMER_HEAD, TIMER_IDLE };

static void on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void set_error_response(ymo_session_t *s, ymo_exchange_t *ex,
                               int status);
static void on_writable(struct ev_loop *loop, ev_io *w, int revents);
static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static bool session_parse(ymo_session_t *s, const uint8_t *data, size_t len);

/* ------------------------------------------------------------------------ */
/* Request records (the format is documented in ymo.h).                     */

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static bool req_reserve(ymo_exchange_t *ex, size_t more) {
  if (ex->req_len + more <= ex->req_cap) return true;
  size_t cap = ex->req_cap * 2;
  while (cap < ex->req_len + more) cap *= 2;
  uint8_t *req = realloc(ex->req, cap);
  if (req == NULL) return false;
  ex->req = req;
  ex->req_cap = cap;
  return true;
}

static bool req_append(ymo_exchange_t *ex, const void *data, size_t len) {
  if (!req_reserve(ex, len)) return false;
  memcpy(ex->req + ex->req_len, data, len);
  ex->req_len += len;
  return true;
}

static ymo_exchange_t *exchange_new(ymo_session_t *s) {
  ymo_exchange_t *ex = calloc(1, sizeof(*ex));
  if (ex == NULL) return NULL;
  ex->req_cap = 512;
  ex->req = malloc(ex->req_cap);
  if (ex->req == NULL) {
    free(ex);
    return NULL;
  }
  atomic_init(&ex->refs, 1);
  atomic_init(&ex->aborted, 0);
  atomic_init(&ex->unwritten, 0);
  ex->session = s;
  ex->worker = s->worker;
  memset(ex->req, 0, YMO_REQ_FIXED_SIZE);
  ex->req_len = YMO_REQ_FIXED_SIZE;
  return ex;
}

/* Per-request parse state that does not belong in the exchange. */
typedef struct {
  size_t method_len, url_len, header_at, body_len;
  int hosts;
  bool expect_continue;
  /* The head is complete: field callbacks from now on are trailers, which
   * count against the head limit but are not passed on. */
  bool in_trailers;
  /* A 100 Continue is owed once the responses ahead are written. */
  bool continue_owed;
  /* Transfer-Encoding seen, and whether every coding in it was "chunked". */
  bool te_seen, te_only_chunked;
  bool bad_host;
  /* The line-end check (see check_lines): its state, and where the last
   * span llhttp reported ended, if in the buffer being parsed. */
  int line_state;
  const char *span_end;
} parse_state_t;

/* The session carries one parse_state_t; kept beside it to keep the struct
 * in ymo_internal.h about ownership, not parsing. */
typedef struct {
  ymo_session_t s;
  parse_state_t ps;
  int error_status;
  int timer_state;
} session_full_t;

#define PS(s) (&((session_full_t *)(s))->ps)
#define ERROR_STATUS(s) (((session_full_t *)(s))->error_status)
#define TIMER_STATE(s) (((session_full_t *)(s))->timer_state)

/* ------------------------------------------------------------------------ */
/* Timers: one ev_timer per connection, re-armed with ev_timer_again() only
 * when the connection changes state, so a client dribbling bytes cannot push
 * its deadline back. */

static void arm_timer(ymo_session_t *s) {
  ymo_server_t *srv = s->server;
  int state;
  if (s->cur != NULL && s->cur->streaming && !s->reading)
    state = TIMER_OFF; /* Waiting for JS to read the body, not the client. */
  else if (s->cur != NULL)
    state = TIMER_HEAD;
  else if (s->fifo_len > 0)
    state = TIMER_OFF;
  else
    state = TIMER_IDLE;
  if (state == TIMER_STATE(s)) return;
  TIMER_STATE(s) = state;
  if (state == TIMER_OFF) {
    ev_timer_stop(srv->loop, &s->timer);
    return;
  }
  int64_t ms = state == TIMER_HEAD ? YMO_OPT(srv, HEADER_TIMEOUT_MS)
                                   : YMO_OPT(srv, KEEPALIVE_TIMEOUT_MS);
  s->timer.repeat = (ev_tstamp)ms / 1000.0;
  ev_timer_again(srv->loop, &s->timer);
}

static void start_reading(ymo_session_t *s) {
  if (!s->reading && !s->closed) {
    ev_io_start(s->server->loop, &s->rio);
    s->reading = true;
  }
}

static void stop_reading(ymo_session_t *s) {
  if (s->reading) {
    ev_io_stop(s->server->loop, &s->rio);
    s->reading = false;
  }
}

/* ------------------------------------------------------------------------ */
/* llhttp callbacks.                                                        */

static int fail(ymo_session_t *s, int status) {
  ERROR_STATUS(s) = status;
  return HPE_USER;
}

static int check_head(ymo_session_t *s, size_t len) {
  s->head_bytes += len;
  if (s->head_bytes > (size_t)YMO_OPT(s->server, MAX_HEAD_SIZE))
    return fail(s, 431);
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  ymo_session_t *s = p->data;
  s->cur = exchange_new(s);
  if (s->cur == NULL) return fail(s, 503);
  memset(PS(s), 0, sizeof(parse_state_t));
  ERROR_STATUS(s) = 0;
  s->head_bytes = 0;
  s->in_value = false;
  arm_timer(s);
  return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len) {
  ymo_session_t *s = p->data;
  if (check_head(s, len) || !req_append(s->cur, at, len))
    return ERROR_STATUS(s) ? HPE_USER : fail(s, 503);
  PS(s)->method_len += len;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  ymo_session_t *s = p->data;
  PS(s)->url_len += len;
  if (PS(s)->url_len > (size_t)YMO_OPT(s->server, MAX_URL_SIZE))
    return fail(s, 414);
  if (check_head(s, len)) return HPE_USER;
  if (!req_append(s->cur, at, len)) return fail(s, 503);
  return 0;
}

/* Line ends in the head, checked on the bytes llhttp consumed between the
 * spans it reports. llhttp 8.1 in strict mode still takes a bare LF as a
 * line end, and joins an obs-fold continuation line onto a header value;
 * RFC 9112 sections 2.2 and 5.2 let a server refuse both, and DESIGN.md asks
 * ymo to. The state carries over from one read to the next, so a line split
 * anywhere, down to one byte per read, is judged the same. */
enum line_state {
  LINE_OFF,      /* Not in a head (or its end was seen). */
  LINE_FIELD,    /* After a field name: the ":" comes next. */
  LINE_TOKEN,    /* After a version or a value (or ":"): OWS, then CR. */
  LINE_CR,       /* CR seen: LF must follow. */
  LINE_START,    /* A line ended: a field, or the CR of the blank line. */
  LINE_FINAL_CR, /* The blank line's CR: its LF ends the head. */
  LINE_BAD
};

static void scan_lines(ymo_session_t *s, const char *from, const char *to) {
  parse_state_t *ps = PS(s);
  for (const char *c = from; c < to; c++) {
    switch (ps->line_state) {
      case LINE_OFF:
      case LINE_BAD:
        return;
      case LINE_FIELD:
        if (*c == ':') ps->line_state = LINE_TOKEN;
        break;
      case LINE_TOKEN:
        if (*c == '\r') ps->line_state = LINE_CR;
        else if (*c == '\n') ps->line_state = LINE_BAD; /* Bare LF. */
        break;
      case LINE_CR:
        ps->line_state = *c == '\n' ? LINE_START : LINE_BAD;
        break;
      case LINE_START:
        if (*c == '\r') ps->line_state = LINE_FINAL_CR;
        else if (*c == ' ' || *c == '\t' || *c == '\n')
          ps->line_state = LINE_BAD; /* obs-fold, or a bare LF. */
        else
          ps->line_state = LINE_OFF; /* A field starts; its span says so. */
        break;
      case LINE_FINAL_CR:
        ps->line_state = *c == '\n' ? LINE_OFF : LINE_BAD;
        return; /* The head ends here: what follows is body. */
    }
  }
}

/* Checks the bytes between the last span and `at`, where a span starts. */
static bool lines_ok_until(ymo_session_t *s, const char *at) {
  parse_state_t *ps = PS(s);
  scan_lines(s, ps->span_end != NULL ? ps->span_end : s->exec_start, at);
  return ps->line_state != LINE_BAD;
}

/* A span ends at `end`; the line state after it is `state`. */
static void span_ends(ymo_session_t *s, const char *end, int state) {
  PS(s)->span_end = end;
  PS(s)->line_state = state;
}

static int on_version(llhttp_t *p, const char *at, size_t len) {
  ymo_session_t *s = p->data;
  if (check_head(s, len)) return HPE_USER;
  span_ends(s, at + len, LINE_TOKEN);
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  ymo_session_t *s = p->data;
  ymo_exchange_t *ex = s->cur;
  if (check_head(s, len)) return HPE_USER;
  if (PS(s)->in_trailers) return 0;
  if (!lines_ok_until(s, at)) return fail(s, 400);
  span_ends(s, at + len, LINE_FIELD);
  if (ex->n_headers == 0 || s->in_value) {
    if (ex->n_headers == 0) ex->headers_start = ex->req_len;
    if (++ex->n_headers > (uint32_t)YMO_OPT(s->server, MAX_HEADERS))
      return fail(s, 431);
    static const uint8_t zero[8] = {0};
    PS(s)->header_at = ex->req_len;
    if (!req_append(ex, zero, 8)) return fail(s, 503);
    s->in_value = false;
  }
  if (!req_append(ex, at, len)) return fail(s, 503);
  uint8_t *lens = ex->req + PS(s)->header_at;
  put_u32(lens, get_u32(lens) + (uint32_t)len);
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  ymo_session_t *s = p->data;
  ymo_exchange_t *ex = s->cur;
  parse_state_t *ps = PS(s);
  if (check_head(s, len)) return HPE_USER;
  if (ps->in_trailers) return 0;
  /* A value that goes on after a line end is an obs-fold continuation
   * (llhttp hands it over as more of the same value, from its SP or HTAB).
   * An empty value comes as an empty span placed after its line end, so it
   * says nothing about line ends. */
  if (len > 0) {
    if (!lines_ok_until(s, at) || ps->line_state == LINE_START)
      return fail(s, 400);
    span_ends(s, at + len, LINE_TOKEN);
  }
  s->in_value = true;
  if (!req_append(ex, at, len)) return fail(s, 503);
  uint8_t *lens = ex->req + PS(s)->header_at;
  put_u32(lens + 4, get_u32(lens + 4) + (uint32_t)len);
  return 0;
}

/* RFC 9110 section 7.2 / RFC 3986 3.2.2-3.2.3: uri-host [ ":" port ]:
 * a reg-name or IP literal, with no "/", "@", spaces or controls. */
static bool valid_host(const uint8_t *v, size_t len) {
  for (size_t i = 0; i < len; i++) {
    uint8_t c = v[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr("-._~!$&'()*+,;=:[]%", c);
    if (!ok || c == 0) return false;
  }
  return true;
}

/* Whether a Transfer-Encoding value lists only "chunked" codings: ymo
 * applies no other (RFC 9112 section 6.1 asks for 501 then). */
static bool only_chunked(const uint8_t *v, size_t len) {
  size_t i = 0;
  while (i < len) {
    while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    size_t start = i;
    while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t') i++;
    if (i > start &&
        !(i - start == 7 && strncasecmp((const char *)v + start, "chunked",
                                        7) == 0))
      return false;
  }
  return true;
}

/* Ends a header value; also entered for an empty value, so in_value is set
 * here too, and the next field name starts a new header. */
static int on_header_value_complete(llhttp_t *p) {
  ymo_session_t *s = p->data;
  ymo_exchange_t *ex = s->cur;
  if (PS(s)->in_trailers) return 0;
  s->in_value = true;
  const uint8_t *h = ex->req + PS(s)->header_at;
  uint32_t name_len = get_u32(h), value_len = get_u32(h + 4);
  const char *name = (const char *)h + 8, *value = name + name_len;
  /* RFC 9110 section 5.1: a field name is a token, never empty (llhttp
   * 8.1 passes ": value" on as a field with no name). */
  if (name_len == 0) return fail(s, 400);
  if (name_len == 4 && strncasecmp(name, "host", 4) == 0) {
    PS(s)->hosts++;
    if (!valid_host((const uint8_t *)value, value_len)) PS(s)->bad_host = true;
  }
  if (name_len == 17 && strncasecmp(name, "transfer-encoding", 17) == 0) {
    if (!PS(s)->te_seen) PS(s)->te_only_chunked = true;
    PS(s)->te_seen = true;
    if (!only_chunked((const uint8_t *)value, value_len))
      PS(s)->te_only_chunked = false;
  }
  if (name_len == 6 && strncasecmp(name, "expect", 6) == 0 &&
      value_len == 12 && strncasecmp(value, "100-continue", 12) == 0)
    PS(s)->expect_continue = true;
  return 0;
}

/* Interim 100 only to HTTP/1.1 clients, and only when it cannot overtake
 * an earlier response on the wire. */
static void send_continue(ymo_session_t *s) {
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  PS(s)->continue_owed = false;
  ssize_t n = send(s->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL);
  (void)n; /* A lost interim response only costs the client its wait. */
}

static int on_headers_complete(llhttp_t *p) {
  ymo_session_t *s = p->data;
  ymo_exchange_t *ex = s->cur;
  parse_state_t *ps = PS(s);
  /* The head's last line ends were consumed just now, in this buffer. */
  scan_lines(s, ps->span_end != NULL ? ps->span_end : s->exec_start,
             s->exec_end);
  if (ps->line_state == LINE_BAD) return fail(s, 400);
  ps->line_state = LINE_OFF;
  if (ex->n_headers == 0) ex->headers_start = ex->req_len;
  ex->body_start = ex->req_len;
  ps->in_trailers = true;
  ex->http_major = llhttp_get_http_major(p);
  ex->http_minor = llhttp_get_http_minor(p);
  /* RFC 9110 section 15.6.6: only HTTP/1.0 and 1.1 are spoken here. */
  if (ex->http_major != 1 || ex->http_minor > 1) return fail(s, 505);
  /* RFC 9112 section 3.2: exactly one valid Host in HTTP/1.1. */
  if (ex->http_minor == 1 && ps->hosts != 1) return fail(s, 400);
  if (ps->hosts > 1 || ps->bad_host) return fail(s, 400);
  if (ps->te_seen) {
    /* RFC 9112 section 6.1: an HTTP/1.0 message with Transfer-Encoding has
     * faulty framing; a coding other than chunked is not implemented. */
    if (ex->http_minor == 0) return fail(s, 400);
    /* Chunked not last: the length cannot be known (section 6.3), 400. */
    if (!(p->flags & F_CHUNKED)) return fail(s, 400);
    if (!ps->te_only_chunked) return fail(s, 501);
  }
  bool has_body = (p->flags & F_CHUNKED) ||
                  ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  if ((p->flags & F_CONTENT_LENGTH) &&
      p->content_length > (uint64_t)YMO_OPT(s->server, MAX_BODY_SIZE))
    return fail(s, 413);
  if (llhttp_get_method(p) == HTTP_HEAD) ex->req_flags |= YMO_REQF_HEAD;
  if (ps->expect_continue && has_body && ex->http_minor >= 1) {
    if (s->fifo_len == 0)
      send_continue(s);
    else
      ps->continue_owed = true; /* Sent by ymo__session_flush(). */
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  ymo_session_t *s = p->data;
  ymo_exchange_t *ex = s->cur;
  PS(s)->body_len += len;
  if (PS(s)->body_len > (size_t)YMO_OPT(s->server, MAX_BODY_SIZE))
    return fail(s, 413);
  if (ex->streaming) {
    /* The head went to JS already: pass the bytes on as they come, unless
     * the request was answered already, when they are only read past. */
    if (!ex->response_done &&
        ymo__worker_add_body(ex->worker, ex, (const uint8_t *)at, len,
                             false) != 0)
      return fail(s, 503);
    TIMER_STATE(s) = TIMER_OFF; /* Progress: restart the body timer. */
    return 0;
  }
  if (!req_append(ex, at, len)) return fail(s, 503);
  return 0;
}

static void fifo_push(ymo_session_t *s, ymo_exchange_t *ex) {
  ex->fifo_next = NULL;
  if (s->fifo_tail != NULL)
    s->fifo_tail->fifo_next = ex;
  else
    s->fifo_head = ex;
  s->fifo_tail = ex;
  s->fifo_len++;
}

/* The static route for a GET or HEAD request, if one matches its target. */
static const ymo_static_route_t *static_route_for(ymo_session_t *s,
                                                  ymo_exchange_t *ex,
                                                  parse_state_t *ps) {
  const uint8_t *method = ex->req + YMO_REQ_FIXED_SIZE;
  bool get = ps->method_len == 3 && memcmp(method, "GET", 3) == 0;
  if (!get && !(ex->req_flags & YMO_REQF_HEAD)) return NULL;
  return ymo__static_route(s->server, method + ps->method_len, ps->url_len);
}

/* Answers ex from a static route, on L: the response goes in the FIFO like
 * any other, so pipelined order holds; it is written after the parse. */
static bool answer_static(ymo_session_t *s, ymo_exchange_t *ex,
                          const ymo_static_route_t *route) {
  ymo_server_t *srv = s->server;
  bool keepalive = ex->req_flags & YMO_REQF_KEEPALIVE;
  bool http10 = ex->http_minor == 0;
  bool close = !keepalive || atomic_load(&srv->draining);
  bool no_body = (ex->req_flags & YMO_REQF_HEAD) || route->status == 204 ||
                 route->status == 304;
  size_t date_len = ymo__date_line(&srv->date_sec, srv->date);
  char head[256];
  int64_t length = route->status == 204 || route->status == 304
                       ? -1
                       : (int64_t)route->body_len;
  size_t head_len =
      ymo__format_head(head, sizeof(head), route->status, srv->date, date_len,
                       length, false, close, http10 && !close);
  size_t body_len = no_body ? 0 : route->body_len;
  size_t len = head_len + route->headers_len + 2 + body_len;
  ymo_out_t *out = ymo__out_new(
      ex, len, YMO_RESP_DONE | (close ? YMO_RESP_CLOSE : 0));
  if (out == NULL || head_len == 0) {
    ymo__out_free(out);
    return false;
  }
  uint8_t *p = out->data;
  memcpy(p, head, head_len);
  p += head_len;
  memcpy(p, route->headers, route->headers_len);
  p += route->headers_len;
  memcpy(p, "\r\n", 2);
  memcpy(p + 2, route->body, body_len);
  ymo__exchange_ref(ex); /* The piece's reference. */
  ex->local = true;
  ex->out_head = ex->out_tail = out;
  atomic_fetch_add(&ex->unwritten, (long long)len);
  ex->response_done = true;
  ex->close_after = close;
  s->flush_owed = true;
  return true;
}

/* Writes the fixed part of ex's request record and pads it (ymo.h). */
static bool finish_record(ymo_session_t *s, ymo_exchange_t *ex) {
  parse_state_t *ps = PS(s);
  size_t padded = (ex->req_len + 7) & ~(size_t)7;
  if (!req_reserve(ex, padded - ex->req_len)) return false;
  memset(ex->req + ex->req_len, 0, padded - ex->req_len);
  uint8_t *h = ex->req;
  put_u32(h, (uint32_t)padded);
  h[12] = ex->http_major;
  h[13] = ex->http_minor;
  h[14] = ex->req_flags;
  h[15] = (uint8_t)ps->method_len;
  put_u32(h + 16, (uint32_t)ps->url_len);
  put_u32(h + 20, ex->n_headers);
  put_u32(h + 24, (uint32_t)(ex->body_start - ex->headers_start));
  put_u32(h + 28, (uint32_t)(ex->req_len - ex->body_start));
  const struct sockaddr_storage *peer = &s->peer;
  if (peer->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
    h[32] = (uint8_t)(ntohs(in->sin_port));
    h[33] = (uint8_t)(ntohs(in->sin_port) >> 8);
    h[34] = 4;
    memcpy(h + 36, &in->sin_addr, 4);
  } else if (peer->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;
    h[32] = (uint8_t)(ntohs(in6->sin6_port));
    h[33] = (uint8_t)(ntohs(in6->sin6_port) >> 8);
    h[34] = 6;
    memcpy(h + 36, &in6->sin6_addr, 16);
  }
  ex->req_len = padded;
  return true;
}

/* Puts ex in the connection's FIFO and gives it to a static route or to the
 * worker. Returns 0, or an llhttp error code. */
static int hand_off(ymo_session_t *s, ymo_exchange_t *ex) {
  fifo_push(s, ex);
  const ymo_static_route_t *route =
      s->server->n_routes > 0 && !ex->streaming
          ? static_route_for(s, ex, PS(s))
          : NULL;
  if (route != NULL) {
    if (!answer_static(s, ex, route)) return fail(s, 503);
  } else if (ymo_worker_add_exchange(s->worker, ex) != 0) {
    /* Cannot queue it: it stays in the FIFO, answered by nothing, and a 503
     * follows it so earlier responses keep their order. */
    ex->response_done = true;
    return fail(s, 503);
  }
  return 0;
}

/* After a read: a request whose body is still coming goes to JS now, with
 * what came so far; the rest follows as body records (ymo_worker_take). So a
 * large upload never sits whole in memory, and JS can start on it early. */
static int stream_body(ymo_session_t *s) {
  ymo_exchange_t *ex = s->cur;
  if (ex == NULL || ex->streaming || !PS(s)->in_trailers) return 0;
  uint64_t min = (uint64_t)YMO_OPT(s->server, STREAM_BODY_MIN);
  bool big = (s->parser.flags & F_CONTENT_LENGTH)
                 ? PS(s)->body_len + s->parser.content_length > min
                 : PS(s)->body_len > min;
  if (!big) return 0; /* Small enough to wait for whole. */
  if (llhttp_should_keep_alive(&s->parser))
    ex->req_flags |= YMO_REQF_KEEPALIVE;
  ex->req_flags |= YMO_REQF_STREAM;
  ex->streaming = true;
  ymo__exchange_ref(ex); /* s->cur keeps one while the body comes. */
  if (!finish_record(s, ex)) return fail(s, 503);
  return hand_off(s, ex);
}

static int on_message_complete(llhttp_t *p) {
  ymo_session_t *s = p->data;
  ymo_exchange_t *ex = s->cur;
  parse_state_t *ps = PS(s);
  bool keepalive = llhttp_should_keep_alive(p);
  ps->continue_owed = false;
  if (ex->streaming) {
    /* The head and the body so far went to JS already: end the body. */
    s->cur = NULL;
    int err = ex->response_done
                  ? 0
                  : ymo__worker_add_body(ex->worker, ex, NULL, 0, true);
    ymo__exchange_unref(ex); /* s->cur's reference. */
    if (err != 0) return fail(s, 503);
  } else {
    /* An Upgrade ymo does not switch for ends the connection after the
     * response (the client may send the new protocol next), so the
     * response says Connection: close. */
    if (keepalive && !llhttp_get_upgrade(p))
      ex->req_flags |= YMO_REQF_KEEPALIVE;
    if (!finish_record(s, ex)) return fail(s, 503);
    s->cur = NULL;
    int err = hand_off(s, ex);
    if (err != 0) return err;
  }
  arm_timer(s);
  if (!keepalive || llhttp_get_upgrade(p)) {
    s->no_more_requests = true;
    return HPE_PAUSED;
  }
  if (s->fifo_len >= YMO_OPT(s->server, MAX_PIPELINE)) return HPE_PAUSED;
  return 0;
}

static llhttp_settings_t parser_settings;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static void init_settings(void) {
  llhttp_settings_init(&parser_settings);
  parser_settings.on_message_begin = on_message_begin;
  parser_settings.on_method = on_method;
  parser_settings.on_url = on_url;
  parser_settings.on_version = on_version;
  parser_settings.on_header_field = on_header_field;
  parser_settings.on_header_value = on_header_value;
  parser_settings.on_header_value_complete = on_header_value_complete;
  parser_settings.on_headers_complete = on_headers_complete;
  parser_settings.on_body = on_body;
  parser_settings.on_message_complete = on_message_complete;
}

/* ------------------------------------------------------------------------ */
/* Sessions.                                                                */

void ymo__session_start(ymo_server_t *srv, int fd,
                        const struct sockaddr_storage *peer) {
  pthread_once(&settings_once, init_settings);
  session_full_t *full = calloc(1, sizeof(*full));
  if (full == NULL) {
    close(fd);
    return;
  }
  ymo_session_t *s = &full->s;
  s->server = srv;
  s->fd = fd;
  s->peer = *peer;
  s->worker = srv->workers[srv->next_worker++ % (size_t)srv->n_workers];
  llhttp_init(&s->parser, HTTP_REQUEST, &parser_settings);
  s->parser.data = s;
  ev_io_init(&s->rio, on_readable, fd, EV_READ);
  s->rio.data = s;
  ev_io_init(&s->wio, on_writable, fd, EV_WRITE);
  s->wio.data = s;
  ev_init(&s->timer, on_timeout);
  s->timer.data = s;
  TIMER_STATE(s) = TIMER_OFF;
  s->next = srv->sessions;
  if (srv->sessions != NULL) srv->sessions->prev = s;
  srv->sessions = s;
  atomic_fetch_add(&srv->connections, 1);
  start_reading(s);
  arm_timer(s);
}

static void free_out_list(ymo_exchange_t *ex) {
  ymo_out_t *out = ex->out_head;
  while (out != NULL) {
    ymo_out_t *next = out->next;
    atomic_fetch_sub_explicit(&ex->unwritten, (long long)(out->len - out->off),
                              memory_order_relaxed);
    ymo__exchange_unref(ex);
    ymo__out_free(out);
    out = next;
  }
  ex->out_head = ex->out_tail = NULL;
}

void ymo__session_close(ymo_session_t *s) {
  if (s->closed) return;
  s->closed = true;
  ymo_server_t *srv = s->server;
  stop_reading(s);
  ev_io_stop(srv->loop, &s->wio);
  ev_timer_stop(srv->loop, &s->timer);
  close(s->fd);
  if (s->cur != NULL) ymo__exchange_unref(s->cur);
  ymo_exchange_t *ex = s->fifo_head;
  while (ex != NULL) {
    ymo_exchange_t *next = ex->fifo_next;
    ex->session = NULL;
    atomic_store_explicit(&ex->aborted, 1, memory_order_release);
    if (!ex->local && !ex->response_done)
      ymo__worker_add_abort(ex->worker, ex);
    free_out_list(ex);
    ymo__exchange_unref(ex);
    ex = next;
  }
  free(s->pending);
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    srv->sessions = s->next;
  if (s->next != NULL) s->next->prev = s->prev;
  atomic_fetch_sub(&srv->connections, 1);
  /* Callers up the stack may still look at s->closed: free it only after
   * this loop iteration (see ymo__sessions_reap). */
  s->next = srv->closed_sessions;
  srv->closed_sessions = s;
  ymo__server_session_closed(srv);
}

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
    if (ex->out_head != NULL || ex->response_done) {
      ymo__session_close(s);
      return;
    }
    atomic_store_explicit(&ex->aborted, 1, memory_order_release);
    ymo__worker_add_abort(ex->worker, ex);
    s->cur = NULL;
    ymo__exchange_unref(ex); /* s->cur's reference; the FIFO keeps one. */
    s->no_more_requests = true;
    stop_reading(s);
    set_error_response(s, ex, status);
    ymo__session_flush(s);
    return;
  }
  s->cur = NULL;
  if (ex != NULL) ymo__exchange_unref(ex);
  s->no_more_requests = true;
  stop_reading(s);
  ex = calloc(1, sizeof(*ex));
  if (ex == NULL) {
    ymo__session_close(s);
    return;
  }
  atomic_init(&ex->refs, 1);
  ex->session = s;
  fifo_push(s, ex);
  set_error_response(s, ex, status);
  ymo__session_flush(s);
}

/* Makes ex, already in the FIFO, answered by L with a plain error page and
 * a close. */
static void set_error_response(ymo_session_t *s, ymo_exchange_t *ex,
                               int status) {
  ex->local = true;
  const char *reason = ymo__reason(status);
  size_t body_len = strlen(reason);
  size_t date_len = ymo__date_line(&s->server->date_sec, s->server->date);
  char head[256];
  size_t head_len = ymo__format_head(head, sizeof(head), status,
                                     s->server->date, date_len,
                                     (int64_t)body_len, false, true, false);
  static const char type[] = "Content-Type: text/plain;charset=UTF-8\r\n\r\n";
  size_t len = head_len + sizeof(type) - 1 + body_len;
  ymo_out_t *out = ymo__out_new(ex, len, YMO_RESP_DONE | YMO_RESP_CLOSE);
  ex->response_done = true;
  ex->close_after = true;
  if (out == NULL) return; /* Out of memory: it just closes. */
  memcpy(out->data, head, head_len);
  memcpy(out->data + head_len, type, sizeof(type) - 1);
  memcpy(out->data + head_len + sizeof(type) - 1, reason, body_len);
  ymo__exchange_ref(ex); /* The piece's reference. */
  ex->out_head = ex->out_tail = out;
  atomic_fetch_add(&ex->unwritten, (long long)len);
}

static void resume_parsing(ymo_session_t *s) {
  if (!s->paused || s->no_more_requests) return;
  s->paused = false;
  llhttp_resume(&s->parser);
  uint8_t *data = s->pending;
  size_t len = s->pending_len;
  s->pending = NULL;
  s->pending_len = 0;
  bool alive = len == 0 || session_parse(s, data, len);
  free(data);
  if (alive && !s->paused && !s->no_more_requests) start_reading(s);
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
  stop_reading(s);
  TIMER_STATE(s) = TIMER_HEAD; /* Let arm_timer() switch it off. */
  arm_timer(s);
}

void ymo__session_resume_body(ymo_session_t *s) {
  if (s->closed || s->paused || s->no_more_requests) return;
  start_reading(s);
  TIMER_STATE(s) = TIMER_OFF;
  arm_timer(s);
}

/* Parses data; returns false when the session was closed. */
static bool session_parse(ymo_session_t *s, const uint8_t *data, size_t len) {
  s->exec_start = (const char *)data;
  s->exec_end = (const char *)data + len;
  PS(s)->span_end = NULL; /* Pointers into an earlier buffer mean nothing. */
  llhttp_errno_t err = llhttp_execute(&s->parser, (const char *)data, len);
  if (err == HPE_OK && s->cur != NULL && !PS(s)->in_trailers) {
    /* A head still coming: check the line ends read so far, carrying the
     * state to the next read. */
    scan_lines(s, PS(s)->span_end != NULL ? PS(s)->span_end : s->exec_start,
               s->exec_end);
    if (PS(s)->line_state == LINE_BAD) {
      respond_local(s, 400);
      return false;
    }
  }
  if (s->flush_owed && err != HPE_USER) {
    /* Static responses queued by the parse: write them now that llhttp is
     * done with this session's state. */
    s->flush_owed = false;
    ymo__session_flush(s);
    if (s->closed) return false;
  }
  if (err == HPE_OK) {
    if (stream_body(s) != 0) {
      respond_local(s, ERROR_STATUS(s) ? ERROR_STATUS(s) : 503);
      return false;
    }
    pause_for_body(s);
    if (TIMER_STATE(s) == TIMER_OFF) arm_timer(s);
    return true;
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    stop_reading(s);
    if (s->no_more_requests || err == HPE_PAUSED_UPGRADE) {
      s->no_more_requests = true;
      return true;
    }
    const uint8_t *pos = (const uint8_t *)llhttp_get_error_pos(&s->parser);
    size_t rest = (size_t)(data + len - pos);
    s->paused = true;
    if (rest > 0) {
      s->pending = malloc(rest);
      if (s->pending == NULL) {
        ymo__session_close(s);
        return false;
      }
      memcpy(s->pending, pos, rest);
      s->pending_len = rest;
    }
    /* The responses may all be written already (a fast handler). */
    if (s->fifo_len < YMO_OPT(s->server, MAX_PIPELINE)) {
      resume_parsing(s);
      return !s->closed;
    }
    return true;
  }
  /* Any callback that failed set the status; the error code llhttp returns
   * depends on which callback it was. */
  int status = ERROR_STATUS(s) ? ERROR_STATUS(s) : 400;
  respond_local(s, status);
  return false;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents) {
  (void)loop;
  (void)revents;
  ymo_session_t *s = w->data;
  uint8_t *buf = s->server->read_buf;
  ssize_t n = read(s->fd, buf, READ_BUF_SIZE);
  if (n > 0) {
    session_parse(s, buf, (size_t)n);
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  /* End of stream, even with requests in flight, means the client is gone,
   * as Deno.serve and Bun.serve take it: their handlers see req.signal
   * abort. (A client that only shut down its sending side gets no answer;
   * HTTP/1.1 clients do not do that.) */
  ymo__session_close(s);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  ymo_session_t *s = w->data;
  TIMER_STATE(s) = TIMER_OFF;
  if (s->cur != NULL && s->fifo_len == 0 && s->head_bytes > 0)
    respond_local(s, 408);
  else
    ymo__session_close(s);
}

/* ------------------------------------------------------------------------ */
/* Writing.                                                                 */

void ymo__deliver_out(ymo_out_t *out) {
  ymo_exchange_t *ex = out->exchange;
  ymo_session_t *s = ex->session;
  if (out->flags & YMO__OUT_RESUME) {
    if (s != NULL && s->cur == ex) ymo__session_resume_body(s);
    ymo__exchange_unref(ex);
    ymo__out_free(out);
    return;
  }
  if (s != NULL && (out->flags & YMO_RESP_DONE) && s->cur == ex &&
      !ex->local) {
    /* Answered before its body was all read: the rest is read and thrown
     * away (RFC 9112 section 9.3 keeps the connection usable), so reading
     * must not stay paused for a handler that no longer reads. */
    ex->response_done = true;
    ymo__session_resume_body(s);
  }
  if (s == NULL || ex->local) {
    /* The client is gone, or L answered this request itself. */
    atomic_fetch_sub_explicit(&ex->unwritten, (long long)out->len,
                              memory_order_relaxed);
    ymo__exchange_unref(ex);
    ymo__out_free(out);
    return;
  }
  if (ex->out_tail != NULL)
    ex->out_tail->next = out;
  else
    ex->out_head = out;
  ex->out_tail = out;
  if (out->flags & YMO_RESP_DONE) ex->response_done = true;
  if (out->flags & YMO_RESP_CLOSE) ex->close_after = true;
  if (ex == s->fifo_head && !s->flush_listed) {
    s->flush_listed = true;
    s->flush_next = s->server->to_flush;
    s->server->to_flush = s;
  }
}

/* Drops the head exchange once its response is written. Returns false when
 * the connection was closed as a result. */
static bool finish_head(ymo_session_t *s) {
  ymo_exchange_t *ex = s->fifo_head;
  s->fifo_head = ex->fifo_next;
  if (s->fifo_head == NULL) s->fifo_tail = NULL;
  s->fifo_len--;
  bool close_now = ex->close_after;
  ex->session = NULL;
  ymo__exchange_unref(ex);
  if (close_now) {
    ymo__session_close(s);
    return false;
  }
  return true;
}

void ymo__session_flush(ymo_session_t *s) {
  ymo_server_t *srv = s->server;
  struct iovec iov[MAX_IOV];
  while (s->fifo_head != NULL) {
    ymo_exchange_t *ex = s->fifo_head;
    if (ex->out_head == NULL) {
      if (!ex->response_done) break;
      if (!finish_head(s)) return;
      continue;
    }
    int n_iov = 0;
    for (ymo_out_t *o = ex->out_head; o != NULL && n_iov < MAX_IOV;
         o = o->next) {
      if (o->len == o->off) continue;
      iov[n_iov].iov_base = o->data + o->off;
      iov[n_iov].iov_len = o->len - o->off;
      n_iov++;
    }
    ssize_t written = 0;
    if (n_iov > 0) {
      /* sendmsg rather than writev for MSG_NOSIGNAL: a client that went
       * away must not raise SIGPIPE in a host that does not ignore it. */
      struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
      written = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
      if (written < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
          ev_io_start(srv->loop, &s->wio);
          return;
        }
        ymo__session_close(s);
        return;
      }
    }
    size_t left = (size_t)written;
    while (ex->out_head != NULL) {
      ymo_out_t *o = ex->out_head;
      size_t avail = o->len - o->off;
      size_t take = left < avail ? left : avail;
      o->off += take;
      left -= take;
      atomic_fetch_sub_explicit(&ex->unwritten, (long long)take,
                                memory_order_relaxed);
      if (o->off < o->len) break;
      ex->out_head = o->next;
      if (ex->out_head == NULL) ex->out_tail = NULL;
      ymo__out_free(o);
      ymo__exchange_unref(ex);
    }
    if (atomic_load_explicit(&ex->want_drain, memory_order_relaxed) &&
        atomic_load_explicit(&ex->unwritten, memory_order_relaxed) <=
            YMO_RESP_LOW_WATER &&
        atomic_exchange(&ex->want_drain, 0))
      ymo__worker_add_drain(ex->worker, ex);
    if (ex->out_head != NULL) {
      ev_io_start(srv->loop, &s->wio);
      return;
    }
  }
  ev_io_stop(srv->loop, &s->wio);
  if (s->fifo_head == NULL && s->cur != NULL && PS(s)->continue_owed &&
      PS(s)->body_len == 0)
    send_continue(s);
  if (s->fifo_head == NULL && s->no_more_requests) {
    ymo__session_close(s);
    return;
  }
  if (s->paused && s->fifo_len < YMO_OPT(srv, MAX_PIPELINE)) {
    resume_parsing(s);
    if (s->closed) return;
  }
  arm_timer(s);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents) {
  (void)loop;
  (void)revents;
  ymo__session_flush(w->data);
}

/* Graceful shutdown: close what is idle, let the rest finish. */
void ymo__sessions_drain(ymo_server_t *srv) {
  ymo_session_t *s = srv->sessions;
  while (s != NULL) {
    ymo_session_t *next = s->next;
    if (s->fifo_len == 0 && (s->cur == NULL || s->head_bytes == 0)) {
      ymo__session_close(s);
    } else {
      s->no_more_requests = true;
      stop_reading(s);
    }
    s = next;
  }
}

void ymo__flush_delivered(ymo_server_t *srv) {
  ymo_session_t *s = srv->to_flush;
  srv->to_flush = NULL;
  while (s != NULL) {
    ymo_session_t *next = s->flush_next;
    s->flush_listed = false;
    /* Closed sessions stay allocated until the reaper runs, after this. */
    if (!s->closed) ymo__session_flush(s);
    s = next;
  }
}

void ymo__sessions_reap(ymo_server_t *srv) {
  ymo_session_t *s = srv->closed_sessions;
  srv->closed_sessions = NULL;
  while (s != NULL) {
    ymo_session_t *next = s->next;
    free(s);
    s = next;
  }
}

size_t ymo__read_buf_size(void) { return READ_BUF_SIZE; }
