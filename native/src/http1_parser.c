/* Layer 5, HTTP/1.1's parsing half: the llhttp callbacks, and ymo's own
 * checks where strict llhttp is lenient (bare LF and obs-fold judged on the
 * raw bytes across reads, versions other than 1.0/1.1, Host missing,
 * duplicated or not a uri-host, codings other than chunked, empty field
 * names). The callbacks only record: request bytes into the exchange's
 * record, limits and checks as an error status (ymo__http1_fail), and, for
 * what needs acting on, a verdict on which they pause the parser. http1.c
 * acts on it after llhttp_execute() returns. Everything here runs on L. */
#include <string.h>
#include <strings.h>

#include "conn.h"

/* ------------------------------------------------------------------------ */
/* llhttp callbacks: they record, and pause on a verdict.                   */

static int fail(ymo_session_t *s, int status) {
  s->http1.error_status = status;
  return HPE_USER;
}

int ymo__http1_fail(ymo_session_t *s, int status) { return fail(s, status); }

static int pause_for(ymo_session_t *s, int verdict) {
  s->http1.verdict = verdict;
  return HPE_PAUSED;
}

static int check_head(ymo_session_t *s, size_t len) {
  s->http1.head_bytes += len;
  if (s->http1.head_bytes > (size_t)YMO_OPT(s->conns, MAX_HEAD_SIZE))
    return fail(s, 431);
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  ymo_session_t *s = p->data;
  s->cur = ymo__exchange_new(s->worker, &s->worker->spares, s, true);
  if (s->cur == NULL) return fail(s, 503);
  memset(&s->http1.req, 0, sizeof(s->http1.req));
  s->http1.error_status = 0;
  s->http1.head_bytes = 0;
  s->http1.in_value = false;
  return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len) {
  ymo_session_t *s = p->data;
  if (check_head(s, len) || !ymo__record_append(s->cur, at, len))
    return s->http1.error_status ? HPE_USER : fail(s, 503);
  s->http1.req.method_len += len;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  ymo_session_t *s = p->data;
  s->http1.req.url_len += len;
  if (s->http1.req.url_len > (size_t)YMO_OPT(s->conns, MAX_URL_SIZE))
    return fail(s, 414);
  if (check_head(s, len)) return HPE_USER;
  if (!ymo__record_append(s->cur, at, len)) return fail(s, 503);
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
  ymo_http1_request_t *ps = &s->http1.req;
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
  ymo_http1_request_t *ps = &s->http1.req;
  scan_lines(s, ps->span_end != NULL ? ps->span_end : s->http1.exec_start, at);
  return ps->line_state != LINE_BAD;
}

/* A span ends at `end`; the line state after it is `state`. */
static void span_ends(ymo_session_t *s, const char *end, int state) {
  s->http1.req.span_end = end;
  s->http1.req.line_state = state;
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
  ymo_http1_request_t *ps = &s->http1.req;
  if (check_head(s, len)) return HPE_USER;
  if (ps->in_trailers) return 0;
  if (!lines_ok_until(s, at)) return fail(s, 400);
  span_ends(s, at + len, LINE_FIELD);
  if (ex->n_headers == 0 || s->http1.in_value) {
    if (ex->n_headers == 0) ex->headers_start = ex->req_len;
    if (++ex->n_headers > (uint32_t)YMO_OPT(s->conns, MAX_HEADERS))
      return fail(s, 431);
    ps->header_at = ymo__record_field_open(ex);
    if (ps->header_at == 0) return fail(s, 503);
    s->http1.in_value = false;
  }
  if (!ymo__record_field_append(ex, ps->header_at, false, at, len))
    return fail(s, 503);
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  ymo_session_t *s = p->data;
  ymo_exchange_t *ex = s->cur;
  ymo_http1_request_t *ps = &s->http1.req;
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
  s->http1.in_value = true;
  if (!ymo__record_field_append(ex, ps->header_at, true, at, len))
    return fail(s, 503);
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

/* RFC 9112 section 5.1: field-line = field-name ":" OWS field-value OWS,
 * OWS = *( SP / HTAB ). llhttp 8.1 skips the leading OWS but keeps the
 * trailing one in the value, and in strict mode refuses a trailing HTAB
 * (not a SP) after a Content-Length or a Transfer-Encoding value. Called as
 * a field name ends, before llhttp reads its value: if the line's end is in
 * the buffer being parsed (the bytes ymo read, which it owns), each HTAB in
 * the OWS before it becomes a SP, which llhttp takes as OWS for every
 * field; on_header_value_complete() then drops that OWS from the value.
 * Only the run of SP and HTAB right before the CR changes, so what llhttp
 * refuses still fails ("5 5", a bare LF, obs-fold), and HTAB inside a value
 * is kept. When the line's CR comes in a later read, parse() (http1.c)
 * does the same there before llhttp reads it (ows_lookahead), and holds
 * back a read's trailing SP/HTAB until the next one, so however the bytes
 * are split, llhttp sees the same line. */
void ymo__http1_value_ows(ymo_session_t *s, uint8_t *from, uint8_t *to) {
  uint8_t *cr = memchr(from, '\r', (size_t)(to - from));
  s->http1.req.ows_lookahead = cr == NULL;
  if (cr == NULL) return; /* The line goes on in the next read. */
  for (uint8_t *q = cr; q > from && (q[-1] == ' ' || q[-1] == '\t'); q--)
    q[-1] = ' ';
}

static int on_header_field_complete(llhttp_t *p) {
  ymo_session_t *s = p->data;
  ymo_http1_t *h = &s->http1;
  if (h->req.in_trailers) return 0;
  /* From the ":" on; the value starts after it. */
  const char *c = h->req.span_end != NULL ? h->req.span_end : h->exec_start;
  ymo__http1_value_ows(s, (uint8_t *)c + 1, (uint8_t *)h->exec_end);
  return 0;
}

/* Ends a header value; also entered for an empty value, so in_value is set
 * here too, and the next field name starts a new header. */
static int on_header_value_complete(llhttp_t *p) {
  ymo_session_t *s = p->data;
  ymo_http1_request_t *ps = &s->http1.req;
  if (ps->in_trailers) return 0;
  s->http1.in_value = true;
  const char *name, *value;
  uint32_t name_len, value_len;
  ymo__record_field_get(s->cur, ps->header_at, &name, &name_len, &value,
                        &value_len);
  /* Trailing OWS is not part of the value (RFC 9110 section 5.5). */
  uint32_t ows = 0;
  while (ows < value_len &&
         (value[value_len - 1 - ows] == ' ' ||
          value[value_len - 1 - ows] == '\t'))
    ows++;
  if (ows > 0) {
    ymo__record_field_trim(s->cur, ps->header_at, ows);
    value_len -= ows;
  }
  /* RFC 9110 section 5.1: a field name is a token, never empty (llhttp
   * 8.1 passes ": value" on as a field with no name). */
  if (name_len == 0) return fail(s, 400);
  if (name_len == 4 && strncasecmp(name, "host", 4) == 0) {
    ps->hosts++;
    if (!valid_host((const uint8_t *)value, value_len)) ps->bad_host = true;
  }
  if (name_len == 17 && strncasecmp(name, "transfer-encoding", 17) == 0) {
    if (!ps->te_seen) ps->te_only_chunked = true;
    ps->te_seen = true;
    if (!only_chunked((const uint8_t *)value, value_len))
      ps->te_only_chunked = false;
  }
  if (name_len == 6 && strncasecmp(name, "expect", 6) == 0 &&
      value_len == 12 && strncasecmp(value, "100-continue", 12) == 0)
    ps->expect_continue = true;
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  ymo_session_t *s = p->data;
  ymo_exchange_t *ex = s->cur;
  ymo_http1_request_t *ps = &s->http1.req;
  /* The head's last line ends were consumed just now, in this buffer. */
  scan_lines(s, ps->span_end != NULL ? ps->span_end : s->http1.exec_start,
             s->http1.exec_end);
  if (ps->line_state == LINE_BAD) return fail(s, 400);
  ps->line_state = LINE_OFF;
  if (ex->n_headers == 0) ex->headers_start = ex->req_len;
  ex->params_start = ex->req_len;
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
  ps->has_body = has_body;
  if ((p->flags & F_CONTENT_LENGTH) &&
      p->content_length > (uint64_t)YMO_OPT(s->conns, MAX_BODY_SIZE))
    return fail(s, 413);
  if (llhttp_get_method(p) == HTTP_HEAD) ex->req_flags |= YMO_REQF_HEAD;
  /* The route's parameters go between the header entries and the body. */
  const uint8_t *method = ymo__record_method(ex);
  if (!ymo__router_match(&s->conns->routes->router, ex, method,
                         ps->method_len, method + ps->method_len, ps->url_len,
                         &ex->route, &ex->n_params))
    return fail(s, 503);
  ex->body_start = ex->req_len;
  if (ps->expect_continue && has_body && ex->http_minor >= 1)
    return pause_for(s, YMO_HTTP1_CONTINUE);
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  ymo_session_t *s = p->data;
  ymo_exchange_t *ex = s->cur;
  if (len == 0) return 0; /* A span restarted at the end of a buffer. */
  s->http1.req.body_len += len;
  if (s->http1.req.body_len > (size_t)YMO_OPT(s->conns, MAX_BODY_SIZE))
    return fail(s, 413);
  if (ex->streaming) {
    /* The head went to JS already: the bytes are passed on as they come. */
    s->http1.body_at = (const uint8_t *)at;
    s->http1.body_piece = len;
    return pause_for(s, YMO_HTTP1_BODY);
  }
  if (!ymo__record_append(ex, at, len)) return fail(s, 503);
  return 0;
}

/* Chunk extensions (RFC 9112 section 7.1.1) are accepted and ignored, but
 * llhttp 8.1 refuses two valid forms. After a token value ended by ";"
 * ("5;a=b;c") it consumes the ";" and then wants another ";" or the CR, so
 * the next name is a "chunk size" error; and it has no quoted-pair in a
 * quoted value ("5;a=\"x\\\"y\""), which it refuses at the backslash.
 * The value callback sees where the value's span ends, so it pauses there
 * and http1.c resumes llhttp at the ";" (it then reads the next extension
 * as llhttp 9 does), or past the escaped byte, back inside the quoted value.
 * Neither skips anything llhttp would judge: the chunk size, the CRLFs and
 * the characters allowed in names and values are checked by llhttp as
 * before, and the escaped byte must be one RFC 9110 section 5.6.4 allows
 * (never CR or LF). */
static int on_chunk_extension_value(llhttp_t *p, const char *at, size_t len) {
  ymo_session_t *s = p->data;
  ymo_http1_request_t *ps = &s->http1.req;
  bool fresh = !ps->ext_continues;
  if (fresh) ps->ext_quoted = len > 0 && at[0] == '"';
  bool at_end = at + len >= s->http1.exec_end;
  if (ps->ext_quoted) {
    /* llhttp reports a quoted value up to and with its closing quote, or
     * up to a byte it refuses there (the backslash among them). */
    if (!at_end && at[len] == '\\') {
      ps->ext_continues = true; /* The value goes on after the escape. */
      return pause_for(s, YMO_HTTP1_EXT_ESCAPE);
    }
    size_t opening = fresh ? 1 : 0;
    bool closed = len > opening && at[len - 1] == '"';
    ps->ext_continues = !closed;
    if (closed) ps->ext_quoted = false;
    return 0;
  }
  ps->ext_continues = at_end; /* A token value goes on in the next read. */
  if (!at_end && at[len] == ';') return pause_for(s, YMO_HTTP1_EXT_SEMICOLON);
  return 0;
}

bool ymo__http1_quoted_pair_ok(uint8_t c) {
  return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
}

/* Where llhttp is inside a quoted chunk-extension value, learnt from llhttp
 * itself (a parser left there), not assumed: its state and the span
 * callback it keeps for the value. */
static void *quoted_state;
static void *quoted_span_cb;

static void learn_quoted_state(void) {
  static const char in[] =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "1;a=\"";
  llhttp_settings_t none;
  llhttp_settings_init(&none);
  llhttp_t probe;
  llhttp_init(&probe, HTTP_REQUEST, &none);
  if (llhttp_execute(&probe, in, sizeof(in) - 1) != HPE_OK ||
      probe._span_pos0 == NULL)
    return;
  quoted_state = probe._current;
  quoted_span_cb = probe._span_cb0;
}

bool ymo__http1_ext_requote(llhttp_t *parser) {
  if (quoted_state == NULL) return false;
  parser->_current = quoted_state;
  parser->_span_cb0 = quoted_span_cb;
  /* Any non-NULL value: llhttp_execute() restarts the span where it
   * starts reading. */
  parser->_span_pos0 = parser;
  return true;
}

static int on_message_complete(llhttp_t *p) {
  ymo_session_t *s = p->data;
  s->http1.keepalive = llhttp_should_keep_alive(p);
  s->http1.upgrade = llhttp_get_upgrade(p);
  return pause_for(s, YMO_HTTP1_MESSAGE);
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
  parser_settings.on_header_field_complete = on_header_field_complete;
  parser_settings.on_header_value = on_header_value;
  parser_settings.on_header_value_complete = on_header_value_complete;
  parser_settings.on_headers_complete = on_headers_complete;
  parser_settings.on_body = on_body;
  parser_settings.on_chunk_extension_value = on_chunk_extension_value;
  parser_settings.on_message_complete = on_message_complete;
  learn_quoted_state();
}

const llhttp_settings_t *ymo__http1_settings(void) {
  pthread_once(&settings_once, init_settings);
  return &parser_settings;
}

bool ymo__http1_head_lines_ok(ymo_session_t *s) {
  ymo_http1_t *h = &s->http1;
  scan_lines(s, h->req.span_end != NULL ? h->req.span_end : h->exec_start,
             h->exec_end);
  return h->req.line_state != LINE_BAD;
}
