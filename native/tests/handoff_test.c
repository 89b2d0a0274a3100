/* The handoff between the loop thread L and two worker threads, over real
 * sockets, with many concurrent clients.
 *
 * Two C threads drive the two workers the way the JavaScript side does:
 * ymo_worker_wait(), ymo_worker_take() into a buffer that grows on a
 * negative return, parse the records, answer each exchange with
 * ymo_worker_respond() (whole, or streamed through
 * ymo_worker_response_body_append()). The answer echoes the request, so
 * each client can predict its reply to the byte: the status, the headers ymo
 * adds, the framing of streamed bodies, Connection handling.
 *
 * Clients keep connections alive over many requests, pipeline up to eight
 * at a time, send POST bodies with Content-Length or chunked, HTTP/1.0,
 * HEAD, 204/304, Expect: 100-continue, and heads dribbled a few bytes at a
 * time. At the end one exchange is still held when ymo_server_shutdown()
 * starts; it is answered during the grace period, and then every waiter gets
 * YMO_ESHUTDOWN.
 *
 * "out-of-order": the workers hold each pipelined group until it is
 * complete, then answer its members in a shuffled order, interleaving the
 * pieces of streamed bodies across exchanges; responses must still come back
 * in request order. */
#include "test_util.h"

enum {
  MODE_DONE = 0,   /* One respond() with YMO_RESP_DONE. */
  MODE_STREAM = 1, /* respond(), append(), append(DONE): three parts. */
  MODE_TAIL = 2,   /* respond(whole body), append(empty, DONE). */
  MODE_LATE = 9,   /* Held until main says so (graceful shutdown). */
};

#define MAX_GROUP 8
#define MAX_GROUPS 64

static bool shuffle_mode;
static atomic_int late_taken;
static atomic_int late_go;

/* ------------------------------------------------------------------------ */
/* The echo both sides compute.                                             */

static void make_echo(dbuf_t *e, const uint8_t *method, size_t method_len,
                      const uint8_t *url, size_t url_len, int peer_port,
                      const uint8_t *host, size_t host_len, const uint8_t *tag,
                      size_t tag_len, bool keepalive, const uint8_t *body,
                      size_t body_len) {
  db_clear(e);
  db_put(e, method, method_len);
  db_puts(e, " ");
  db_put(e, url, url_len);
  db_printf(e, "\npeer=%d\nhost=", peer_port);
  db_put(e, host, host_len);
  db_puts(e, "\ntag=");
  db_put(e, tag, tag_len);
  db_printf(e, "\nkeepalive=%d\nbody=%zu\n", keepalive ? 1 : 0, body_len);
  db_put(e, body, body_len);
}

/* The three parts of a MODE_STREAM body. */
static void stream_parts(size_t len, size_t off[4]) {
  off[0] = 0;
  off[1] = len / 3;
  off[2] = off[1] + len / 3;
  off[3] = len;
}

/* ------------------------------------------------------------------------ */
/* Worker threads.                                                          */

typedef struct {
  uint32_t id, gen;
  int mode, status, step;
  bool close;
  /* No body goes out (HEAD, 204, 304): a streamed response then has no
   * framing, so the client cannot tell when it ends and may close first. */
  bool no_body;
  dbuf_t body, headers;
} held_t;

typedef struct {
  int port;
  long gid;
  int n, have;
  held_t m[MAX_GROUP];
} group_t;

typedef struct {
  ymo_worker_t *w;
  int index;
  pthread_t thread;
  takebuf_t tb;
  unsigned seed;
  long requests, streamed, aborts, unframed_gone;
  int final_wait;
  group_t groups[MAX_GROUPS];
  held_t late;
  bool has_late;
} driver_t;

static void held_free(held_t *h) {
  db_free(&h->body);
  db_free(&h->headers);
}

/* The result of a streamed call: 0 or more, or YMO_EPIPE when the client
 * may legitimately be gone (see held_t.no_body). */
static bool stream_rc(driver_t *d, held_t *h, int rc, const char *what) {
  if (rc == YMO_EPIPE && h->no_body) {
    d->unframed_gone++;
    return true;
  }
  CHECKF(rc >= 0, "%s: %s", what, ymo_strerror(rc));
  return false;
}

/* Makes the next call of h's response; true when the response is done. */
static bool advance(driver_t *d, held_t *h) {
  int close = h->close ? YMO_RESP_CLOSE : 0;
  const uint8_t *b = h->body.p;
  size_t len = h->body.len;
  int step = h->step++;
  int rc;
  if (h->mode == MODE_DONE || h->mode == MODE_LATE) {
    rc = ymo_worker_respond(d->w, h->id, h->gen, h->status, h->headers.p,
                            (int32_t)h->headers.len, b, (int32_t)len,
                            YMO_RESP_DONE | close);
    CHECKF(rc == 0, "respond: %s", ymo_strerror(rc));
    return true;
  }
  if (step == 0) {
    size_t off[4];
    stream_parts(len, off);
    size_t first = h->mode == MODE_STREAM ? off[1] : len;
    rc = ymo_worker_respond(d->w, h->id, h->gen, h->status, h->headers.p,
                            (int32_t)h->headers.len, b, (int32_t)first,
                            close);
    CHECKF(rc == 0, "respond (streamed): %s", ymo_strerror(rc));
    d->streamed++;
    return false;
  }
  if (h->mode == MODE_TAIL) {
    rc = ymo_worker_response_body_append(d->w, h->id, h->gen, NULL, 0,
                                         YMO_RESP_DONE);
    stream_rc(d, h, rc, "append");
    return true;
  }
  size_t off[4];
  stream_parts(len, off);
  bool last = step == 2;
  rc = ymo_worker_response_body_append(d->w, h->id, h->gen, b + off[step],
                                       (int32_t)(off[step + 1] - off[step]),
                                       last ? YMO_RESP_DONE : 0);
  return stream_rc(d, h, rc, "append") || last;
}

static void finish(driver_t *d, held_t *h) {
  while (!advance(d, h)) {
  }
  /* The handle is finished: every further call on it is stale. */
  CHECK_EQ(ymo_worker_response_body_append(d->w, h->id, h->gen, NULL, 0,
                                           YMO_RESP_DONE),
           YMO_ESTALE);
  held_free(h);
}

/* Answers a complete group in shuffled orders, one step of every member at
 * a time, so streamed pieces of later exchanges reach L first. */
static void answer_group(driver_t *d, group_t *g) {
  int order[MAX_GROUP];
  bool done[MAX_GROUP] = {false};
  int left = g->n;
  while (left > 0) {
    for (int i = 0; i < g->n; i++) order[i] = i;
    for (int i = g->n - 1; i > 0; i--) {
      int j = (int)(rand_r(&d->seed) % (unsigned)(i + 1));
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    /* At least once, the last request is answered first. */
    if (g->m[g->n - 1].step == 0) {
      for (int i = 0; i < g->n; i++)
        if (order[i] == g->n - 1) {
          order[i] = order[0];
          order[0] = g->n - 1;
        }
    }
    for (int k = 0; k < g->n; k++) {
      int i = order[k];
      if (done[i]) continue;
      if (advance(d, &g->m[i])) {
        done[i] = true;
        left--;
        CHECK_EQ(ymo_worker_respond(d->w, g->m[i].id, g->m[i].gen, 200, NULL,
                                    0, NULL, 0, YMO_RESP_DONE),
                 YMO_ESTALE);
        held_free(&g->m[i]);
      }
    }
  }
  g->n = g->have = 0;
}

static group_t *find_group(driver_t *d, int port, long gid, int n) {
  group_t *free_g = NULL;
  for (int i = 0; i < MAX_GROUPS; i++) {
    group_t *g = &d->groups[i];
    if (g->n > 0 && g->port == port && g->gid == gid) return g;
    if (g->n == 0 && free_g == NULL) free_g = g;
  }
  CHECKF(free_g != NULL, "more than %d groups in flight", MAX_GROUPS);
  free_g->port = port;
  free_g->gid = gid;
  free_g->n = n;
  free_g->have = 0;
  return free_g;
}

static void handle(driver_t *d, const rec_t *r) {
  char url[4096];
  rec_url(r, url, sizeof(url));
  CHECK_EQ(r->http_major, 1);
  CHECK(r->http_minor <= 1);
  CHECK_EQ(r->remote_family, 4);
  static const uint8_t loopback[4] = {127, 0, 0, 1};
  CHECK(memcmp(r->remote_addr, loopback, 4) == 0);
  bool is_head = r->method_len == 4 && memcmp(r->method, "HEAD", 4) == 0;
  CHECK_EQ(!!(r->flags & YMO_REQF_HEAD), is_head);
  size_t host_len, tag_len;
  const uint8_t *host = rec_header(r, "host", &host_len);
  const uint8_t *tag = rec_header(r, "x-tag", &tag_len);
  CHECKF(host != NULL && tag != NULL, "no Host or X-Tag in %s", url);

  held_t h = {0};
  h.id = r->id;
  h.gen = r->gen;
  h.mode = (int)url_param(url, "m", MODE_DONE);
  h.status = (int)url_param(url, "s", 200);
  h.close = url_param(url, "c", 0) != 0;
  h.no_body = is_head || h.status == 204 || h.status == 304;
  make_echo(&h.body, r->method, r->method_len, r->url, r->url_len,
            r->remote_port, host, host_len, tag, tag_len,
            r->flags & YMO_REQF_KEEPALIVE, r->body, r->body_len);
  db_puts(&h.headers, "Content-Type: text/plain\r\nX-Tag: ");
  db_put(&h.headers, tag, tag_len);
  db_puts(&h.headers, "\r\n");
  /* Not finished yet: the handle is live. */
  CHECK_EQ(ymo_worker_aborted(d->w, h.id, h.gen), 0);

  if (h.mode == MODE_LATE) {
    CHECK(!d->has_late);
    d->late = h;
    d->has_late = true;
    atomic_fetch_add(&late_taken, 1);
    return;
  }
  long gid = url_param(url, "g", -1);
  int n = (int)url_param(url, "n", 1);
  if (!shuffle_mode || gid < 0 || n < 2) {
    finish(d, &h);
    return;
  }
  CHECK(n <= MAX_GROUP);
  group_t *g = find_group(d, r->remote_port, gid, n);
  int i = (int)url_param(url, "i", -1);
  CHECKF(i == g->have, "group member %d arrived as number %d", i, g->have);
  g->m[g->have++] = h;
  if (g->have == g->n) answer_group(d, g);
}

static void *driver_main(void *arg) {
  driver_t *d = arg;
  for (;;) {
    int n = ymo_worker_wait(d->w);
    if (n == YMO_ESHUTDOWN) {
      d->final_wait = n;
      break;
    }
    CHECKF(n >= 0, "wait: %d", n);
    for (;;) {
      int32_t got = take_all(d->w, &d->tb);
      if (got == 0) break;
      for (size_t off = 0; off < (size_t)got;) {
        rec_t r;
        off += parse_record(d->tb.p + off, (size_t)got - off, &r);
        if (r.flags & YMO_REQF_ABORT) {
          d->aborts++;
          continue;
        }
        d->requests++;
        handle(d, &r);
      }
    }
    if (d->has_late && atomic_load(&late_go)) {
      finish(d, &d->late);
      d->has_late = false;
    }
  }
  takebuf_free(&d->tb);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Clients.                                                                 */

typedef struct {
  int index, port, conns, rounds;
  unsigned seed;
  pthread_t thread;
  long sent;
  long seq;
} client_t;

typedef struct {
  const char *method;
  int version; /* 10 or 11 */
  bool ka10, conn_close, resp_close, expect100;
  int mode, status;
  size_t body_len;
  int enc; /* 0 no body framing, 1 Content-Length, 2 chunked */
  long gid;
  int n, i;
} opts_t;

typedef struct {
  dbuf_t req;
  size_t head_len; /* Where the body starts in req (Expect: 100-continue). */
  expect_t exp;
  bool closes;
  bool unframed; /* Streamed with no body: the server may still hold it. */
} rq_t;

static unsigned rnd(client_t *c) { return (unsigned)rand_r(&c->seed); }

static size_t rnd_range(client_t *c, size_t lo, size_t hi) {
  return lo + rnd(c) % (hi - lo + 1);
}

static void random_opts(client_t *c, opts_t *o, bool may_close,
                        size_t max_body) {
  memset(o, 0, sizeof(*o));
  o->gid = -1;
  o->n = 1;
  static const char *methods[] = {"GET", "POST", "PUT", "HEAD", "DELETE"};
  o->method = methods[rnd(c) % 5];
  o->version = rnd(c) % 8 == 0 ? 10 : 11;
  o->ka10 = o->version == 10 && (!may_close || rnd(c) % 2);
  o->mode = (int)(rnd(c) % 3);
  static const int statuses[] = {200, 200, 200, 201, 404, 299, 204, 304};
  o->status = statuses[rnd(c) % 8];
  if (may_close) {
    o->conn_close = rnd(c) % 3 == 0;
    o->resp_close = rnd(c) % 4 == 0;
    if (o->conn_close) o->ka10 = false; /* Not both Connection values. */
  }
  bool has_body = strcmp(o->method, "POST") == 0 ||
                  strcmp(o->method, "PUT") == 0;
  if (has_body) {
    unsigned k = rnd(c) % 20;
    if (k < 4)
      o->body_len = 0;
    else if (k < 10)
      o->body_len = rnd_range(c, 1, 200);
    else if (k < 19)
      o->body_len = rnd_range(c, 200, 5000);
    else
      o->body_len = rnd_range(c, 20000, 200000);
    if (o->body_len > max_body) o->body_len = max_body;
    o->enc = o->version == 11 && rnd(c) % 2 ? 2 : 1;
  }
  /* A streamed body over HTTP/1.0 ends with the connection. */
  if (!may_close && o->version == 10 && o->mode != MODE_DONE &&
      strcmp(o->method, "HEAD") != 0 && o->status != 204 &&
      o->status != 304)
    o->mode = MODE_DONE;
}

static void build_request(client_t *c, int fd, const opts_t *o, rq_t *q) {
  memset(q, 0, sizeof(*q));
  int port = local_port(fd);
  char tag[24], host[32];
  snprintf(tag, sizeof(tag), "t%x-%lx", rnd(c), c->seq);
  snprintf(host, sizeof(host), "127.0.0.1:%d", c->port);
  dbuf_t url = {0};
  db_printf(&url, "/c%d/r%ld?m=%d&s=%d&c=%d", c->index, c->seq++, o->mode,
            o->status, o->resp_close ? 1 : 0);
  if (o->gid >= 0) db_printf(&url, "&g=%ld&n=%d&i=%d", o->gid, o->n, o->i);
  db_puts(&url, "&pad=");
  for (size_t k = rnd_range(c, 0, 120); k > 0; k--)
    db_printf(&url, "%c", "abcdefghijklmnopqrstuvwxyz0123456789-._~"[rnd(c) % 40]);

  dbuf_t body = {0};
  for (size_t k = 0; k < o->body_len; k++) {
    uint8_t byte = (uint8_t)rnd(c);
    db_put(&body, &byte, 1);
  }

  db_printf(&q->req, "%s %s HTTP/1.%d\r\nHost: %s\r\nX-Tag: %s\r\n", o->method,
            url.p, o->version == 10 ? 0 : 1, host, tag);
  for (size_t k = rnd_range(c, 0, 4); k > 0; k--)
    db_printf(&q->req, "X-Pad-%zu: %*s\r\n", k, (int)rnd_range(c, 0, 60), "v");
  if (o->conn_close) db_puts(&q->req, "Connection: close\r\n");
  if (o->ka10) db_puts(&q->req, "Connection: keep-alive\r\n");
  if (o->enc == 1) db_printf(&q->req, "Content-Length: %zu\r\n", o->body_len);
  if (o->enc == 2) db_puts(&q->req, "Transfer-Encoding: chunked\r\n");
  if (o->expect100) db_puts(&q->req, "Expect: 100-continue\r\n");
  db_puts(&q->req, "\r\n");
  q->head_len = q->req.len;
  if (o->enc == 2) {
    size_t off = 0;
    while (off < body.len) {
      size_t n = rnd_range(c, 1, 4096);
      if (n > body.len - off) n = body.len - off;
      db_printf(&q->req, "%zx\r\n", n);
      db_put(&q->req, body.p + off, n);
      db_puts(&q->req, "\r\n");
      off += n;
    }
    db_puts(&q->req, "0\r\n\r\n");
  } else {
    db_put(&q->req, body.p, body.len);
  }

  /* The reply, as the worker builds it and ymo frames it. */
  bool keepalive = o->conn_close ? false : o->version == 11 || o->ka10;
  dbuf_t echo = {0};
  make_echo(&echo, (const uint8_t *)o->method, strlen(o->method), url.p,
            url.len, port, (const uint8_t *)host, strlen(host),
            (const uint8_t *)tag, strlen(tag), keepalive, body.p, body.len);
  bool is_head = strcmp(o->method, "HEAD") == 0;
  bool no_body_status = o->status == 204 || o->status == 304;
  bool no_body = is_head || no_body_status;
  bool http10 = o->version == 10;
  bool close = !keepalive || o->resp_close;
  bool done = o->mode == MODE_DONE;
  bool chunked = false;
  long long content_length = -1;
  if (done) {
    if (!no_body_status) content_length = (long long)echo.len;
  } else if (!no_body) {
    if (http10)
      close = true;
    else
      chunked = true;
  }
  char headers[64];
  snprintf(headers, sizeof(headers),
           "Content-Type: text/plain\r\nX-Tag: %s\r\n", tag);
  expect_head(&q->exp, o->status, content_length, chunked, close,
              http10 && !close, headers);
  if (!no_body) {
    if (done || !chunked) {
      db_put(&q->exp.b, echo.p, echo.len);
    } else if (o->mode == MODE_STREAM) {
      size_t off[4];
      stream_parts(echo.len, off);
      for (int k = 0; k < 3; k++)
        expect_chunk(&q->exp, echo.p + off[k], off[k + 1] - off[k]);
      db_puts(&q->exp.b, "0\r\n\r\n");
    } else {
      expect_chunk(&q->exp, echo.p, echo.len);
      db_puts(&q->exp.b, "0\r\n\r\n");
    }
  }
  q->closes = close;
  q->unframed = !done && no_body;
  db_free(&echo);
  db_free(&body);
  db_free(&url);
}

static void rq_free(rq_t *q) {
  db_free(&q->req);
  db_free(&q->exp.b);
}

/* Sends in pieces of 1..16 bytes, so the parser sees every split. */
static void send_dribbled(client_t *c, int fd, const dbuf_t *b) {
  size_t off = 0;
  while (off < b->len) {
    size_t n = rnd_range(c, 1, 16);
    if (n > b->len - off) n = b->len - off;
    send_all(fd, b->p + off, n);
    off += n;
    if (rnd(c) % 4 == 0) usleep(50);
  }
}

static void *client_main(void *arg) {
  client_t *c = arg;
  char what[96];
  for (int conn = 0; conn < c->conns; conn++) {
    int fd = client_connect(c->port);
    bool closed = false, unframed = false;
    long gid = 0;
    for (int round = 0; round < c->rounds && !closed; round++) {
      bool last = round == c->rounds - 1;
      unsigned kind = rnd(c) % 20;
      /* After an unframed response the server may not have finished the
       * exchange yet, and then it sends no 100 Continue (see
       * take_test.c, continue-after-pipelined). */
      if (kind == 18 && unframed) kind = 0;
      if (kind < 11 || kind == 19) {
        /* One request; the last one may close the connection. */
        opts_t o;
        random_opts(c, &o, last, 1 << 20);
        rq_t q;
        build_request(c, fd, &o, &q);
        if (kind == 19)
          send_dribbled(c, fd, &q.req);
        else
          send_all(fd, q.req.p, q.req.len);
        snprintf(what, sizeof(what), "client %d conn %d round %d", c->index,
                 conn, round);
        EXPECT_RESPONSE(fd, &q.exp, what);
        closed = q.closes;
        unframed = q.unframed;
        rq_free(&q);
        c->sent++;
      } else if (kind < 18) {
        /* A pipelined group, sent in one write. */
        int n = (int)rnd_range(c, 2, MAX_GROUP);
        rq_t q[MAX_GROUP];
        dbuf_t all = {0};
        for (int i = 0; i < n; i++) {
          opts_t o;
          random_opts(c, &o, last && i == n - 1, 3000);
          o.gid = gid;
          o.n = n;
          o.i = i;
          build_request(c, fd, &o, &q[i]);
          db_put(&all, q[i].req.p, q[i].req.len);
        }
        gid++;
        send_all(fd, all.p, all.len);
        for (int i = 0; i < n; i++) {
          snprintf(what, sizeof(what),
                   "client %d conn %d round %d pipelined %d of %d", c->index,
                   conn, round, i + 1, n);
          EXPECT_RESPONSE(fd, &q[i].exp, what);
          closed = q[i].closes;
          unframed = q[i].unframed;
          rq_free(&q[i]);
        }
        db_free(&all);
        c->sent += n;
      } else {
        /* Expect: 100-continue; the body goes only after the interim
         * response. */
        opts_t o;
        random_opts(c, &o, false, 1 << 20);
        o.method = "POST";
        o.version = 11;
        o.ka10 = false;
        o.expect100 = true;
        o.enc = 1;
        if (o.body_len == 0) o.body_len = rnd_range(c, 1, 3000);
        rq_t q;
        build_request(c, fd, &o, &q);
        send_all(fd, q.req.p, q.head_len);
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uint8_t got[sizeof(cont) - 1];
        size_t k = recv_n(fd, got, sizeof(got));
        if (k != sizeof(got) || memcmp(got, cont, k) != 0) {
          fprintf(stderr, "expected 100 Continue, got %zu bytes:\n", k);
          print_escaped(stderr, got, k, 100);
          test_fail(__FILE__, __LINE__, "no 100 Continue");
        }
        send_all(fd, q.req.p + q.head_len, q.req.len - q.head_len);
        snprintf(what, sizeof(what), "client %d conn %d round %d expect",
                 c->index, conn, round);
        EXPECT_RESPONSE(fd, &q.exp, what);
        unframed = q.unframed;
        rq_free(&q);
        c->sent++;
      }
    }
    if (closed) {
      snprintf(what, sizeof(what), "client %d conn %d", c->index, conn);
      CHECK_CLOSED(fd, what);
    }
    close(fd);
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  test_deadline(55);
  /* Deno and Bun ignore SIGPIPE; so does this host. */
  signal(SIGPIPE, SIG_IGN);
  CHECKF(argc == 2 && (strcmp(argv[1], "in-order") == 0 ||
                       strcmp(argv[1], "out-of-order") == 0),
         "usage: handoff_test in-order|out-of-order");
  shuffle_mode = strcmp(argv[1], "out-of-order") == 0;
  int n_clients = 6, conns = 4, rounds = 40;
  const char *scale = getenv("YMO_TEST_SCALE");
  if (scale != NULL) rounds = rounds * atoi(scale);

  int port;
  ymo_server_t *srv = test_server(2, &port);
  CHECK(ymo_server_worker(srv, 2) == NULL);
  CHECK(ymo_server_worker(srv, -1) == NULL);
  driver_t d[2];
  memset(d, 0, sizeof(d));
  for (int i = 0; i < 2; i++) {
    d[i].w = ymo_server_worker(srv, i);
    CHECK(d[i].w != NULL);
    d[i].index = i;
    d[i].seed = 77u + (unsigned)i;
    CHECK_OK(ymo_worker_start(d[i].w));
  }
  CHECK_OK(ymo_server_start(srv));
  CHECK_EQ(ymo_server_start(srv), YMO_EALREADY);
  for (int i = 0; i < 2; i++)
    CHECK(pthread_create(&d[i].thread, NULL, driver_main, &d[i]) == 0);

  double t0 = now_sec();
  client_t c[16];
  memset(c, 0, sizeof(c));
  for (int i = 0; i < n_clients; i++) {
    c[i].index = i;
    c[i].port = port;
    c[i].conns = conns;
    c[i].rounds = rounds;
    c[i].seed = 1000u + (unsigned)i * 7919u + (shuffle_mode ? 1 : 0);
    CHECK(pthread_create(&c[i].thread, NULL, client_main, &c[i]) == 0);
  }
  long sent = 0;
  for (int i = 0; i < n_clients; i++) {
    CHECK(pthread_join(c[i].thread, NULL) == 0);
    sent += c[i].sent;
  }
  double t1 = now_sec();

  /* Graceful shutdown with one exchange still held by a worker: it is
   * answered during the grace period, with Connection: close. */
  int fd = client_connect(port);
  static const char late_req[] =
      "GET /late?m=9 HTTP/1.1\r\nHost: late\r\nX-Tag: late\r\n\r\n";
  send_all(fd, late_req, sizeof(late_req) - 1);
  while (atomic_load(&late_taken) == 0) sleep_ms(1);
  CHECK_OK(ymo_server_shutdown(srv, 30000));
  CHECK_OK(ymo_server_shutdown(srv, 30000)); /* Idempotent. */
  atomic_store(&late_go, 1);
  for (int i = 0; i < 2; i++) CHECK_OK(ymo_worker_notify(d[i].w));
  expect_t late = {0};
  dbuf_t body = {0};
  static const char late_url[] = "/late?m=9";
  make_echo(&body, (const uint8_t *)"GET", 3, (const uint8_t *)late_url,
            sizeof(late_url) - 1, local_port(fd), (const uint8_t *)"late", 4,
            (const uint8_t *)"late", 4, true, NULL, 0);
  expect_head(&late, 200, (long long)body.len, false, true, false,
              "Content-Type: text/plain\r\nX-Tag: late\r\n");
  db_put(&late.b, body.p, body.len);
  EXPECT_RESPONSE(fd, &late, "response during graceful shutdown");
  CHECK_CLOSED(fd, "response during graceful shutdown");
  close(fd);
  db_free(&body);
  db_free(&late.b);

  /* With the last connection gone, L stops and releases the waiters. */
  long taken = 0, streamed = 0;
  int grows = 0;
  for (int i = 0; i < 2; i++) {
    CHECK(pthread_join(d[i].thread, NULL) == 0);
    CHECK_EQ(d[i].final_wait, YMO_ESHUTDOWN);
    CHECKF(d[i].requests > 0, "worker %d got no requests", i);
    CHECK_EQ(d[i].aborts, 0);
    CHECK(!d[i].has_late);
    for (int g = 0; g < MAX_GROUPS; g++) CHECK_EQ(d[i].groups[g].n, 0);
    /* Released for good: wait returns at once. */
    CHECK_EQ(ymo_worker_wait(d[i].w), YMO_ESHUTDOWN);
    taken += d[i].requests;
    streamed += d[i].streamed;
    grows += d[i].tb.grows;
    free(d[i].tb.p);
  }
  CHECK_EQ(taken, sent + 1);
  CHECK(streamed > 0);
  CHECK(grows > 0);
  /* The listener is closed. */
  int fd2 = client_connect_try(port);
  CHECKF(fd2 == -ECONNREFUSED, "connect after shutdown: %s",
         fd2 >= 0 ? "accepted" : strerror(-fd2));
  CHECK_OK(ymo_server_stop(srv));
  CHECK_OK(ymo_server_stop(srv));
  CHECK_OK(ymo_server_shutdown(srv, 0));
  CHECK_EQ(ymo_server_connections(srv), 0);
  ymo_server_free(srv);
  printf("handoff_test %s: ok, %ld requests (%ld streamed) in %.2f s\n",
         argv[1], sent, streamed, t1 - t0);
  return 0;
}
