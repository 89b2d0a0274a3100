/*
 * A plain HTTP/1.1 server on libev: the baseline of the benchmark's `static`
 * workload, to compare ymo's static routes with what one C thread on the
 * same event loop library does when it has nothing else to do.
 *
 *   gcc -O2 -o plain_libev scripts/bench/plain_libev.c -lev
 *   ./plain_libev [--port N] [--hostname H] [--workers N]
 *
 * It answers the benchmark app's routes (scripts/bench/app.ts) with the
 * bytes ymo sends for them:
 *
 *   GET /, GET /static   "Hello, World!", content-type text/plain;charset=UTF-8
 *   GET /16k             16 KiB of "a", content-type application/octet-stream
 *   POST /echo           the request body (up to 8 KiB, by Content-Length),
 *                        content-type application/octet-stream
 *   anything else        404 with an empty body
 *
 * each with a Date and a Content-Length (HEAD gets the head alone). One
 * thread, level-triggered ev_io watchers, non-blocking sockets with
 * TCP_NODELAY (as ymo sets), keep-alive, and pipelining: one read(2) per
 * readable event into the connection's buffer, every complete request in it
 * answered into one output buffer, then one write(2) for the batch. While an
 * answer is only partly written the connection waits for writability and
 * reads nothing more. The Date line is rebuilt once a second by an
 * ev_periodic. A request ends after its head ("\r\n\r\n") and its
 * Content-Length bytes; Transfer-Encoding, or a body larger than 8 KiB, gets
 * 400 and the connection is closed, since the benchmark sends neither.
 * "Connection: close", and HTTP/1.0 without "Connection: keep-alive", close
 * the connection after the answer.
 *
 * --workers N > 1 forks N - 1 more processes, each listening on its own
 * SO_REUSEPORT socket with its own loop, as the peers do with several
 * workers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ev.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Room for a request in each connection: wrk's heads are about 50 bytes and
 * the echo workload's bodies 1 KiB. */
#define IN_CAP 16384
#define MAX_BODY 8192
#define BIG_LEN (16 * 1024)

static const char HELLO[] = "Hello, World!";
static const char TEXT[] = "text/plain;charset=UTF-8";
static const char BINARY[] = "application/octet-stream";
static char big[BIG_LEN]; /* The body of GET /16k: 16 KiB of 'a'. */

static const char BAD_REQUEST[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
    "Connection: close\r\n\r\n";
static const char TOO_LARGE[] =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
    "Connection: close\r\n\r\n";

/* "Date: ...\r\n", rebuilt once a second. */
static char date_line[64];
static size_t date_len;

struct conn {
  ev_io io;      /* first member: the watcher's address is the conn's */
  int closing;   /* close once `out` is written */
  size_t in_len; /* bytes in `in` */
  size_t seen;   /* bytes of `in` already searched for a head's end */
  char *out;     /* answers not yet written: out[out_off .. out_len) */
  size_t out_off, out_len, out_cap;
  char in[IN_CAP];
};

static void build_date(time_t now) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                  "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                     "May", "Jun", "Jul", "Aug",
                                     "Sep", "Oct", "Nov", "Dec"};
  struct tm tm;
  gmtime_r(&now, &tm);
  int n = snprintf(date_line, sizeof date_line,
                   "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                   days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                   tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  date_len = (size_t)n;
}

static void on_tick(struct ev_loop *loop, ev_periodic *w, int revents) {
  (void)w;
  (void)revents;
  build_date((time_t)ev_now(loop));
}

static void conn_close(struct ev_loop *loop, struct conn *c) {
  ev_io_stop(loop, &c->io);
  close(c->io.fd);
  free(c->out);
  free(c);
}

/* Watch `c` for `events` (EV_READ or EV_WRITE) instead of what it watched. */
static void conn_watch(struct ev_loop *loop, struct conn *c, int events) {
  if ((c->io.events & (EV_READ | EV_WRITE)) == events) return;
  ev_io_stop(loop, &c->io);
  ev_io_set(&c->io, c->io.fd, events);
  ev_io_start(loop, &c->io);
}

static int queue(struct conn *c, const char *bytes, size_t len) {
  if (c->out_len + len > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + len) cap *= 2;
    char *out = realloc(c->out, cap);
    if (!out) return -1;
    c->out = out;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, bytes, len);
  c->out_len += len;
  return 0;
}

/* Whether [p, end) contains `word`, ignoring ASCII case. */
static int has_word(const char *p, const char *end, const char *word) {
  size_t n = strlen(word);
  for (; (size_t)(end - p) >= n; p++) {
    if (strncasecmp(p, word, n) == 0) return 1;
  }
  return 0;
}

/* Queues one answer: status line, Date, Content-Length, content-type and
 * (unless `is_head`) the body. */
static int respond(struct conn *c, const char *status, const char *type,
                   const char *body, size_t len, int is_head) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %s\r\n%.*sContent-Length: %zu\r\n%s%s%s\r\n",
                   status, (int)date_len, date_line, len,
                   type ? "content-type: " : "", type ? type : "",
                   type ? "\r\n" : "");
  if (queue(c, head, (size_t)n) < 0) return -1;
  return is_head || len == 0 ? 0 : queue(c, body, len);
}

/* The length of the request starting at `req` if all of it is in
 * [req, end): its head (ending in "\r\n\r\n" at `head_end`) and body; 0 while
 * it is incomplete, -1 for one this server refuses. */
static long request_length(const char *req, const char *head_end,
                           const char *end, size_t *body_len) {
  *body_len = 0;
  const char *line = memmem(req, (size_t)(head_end - req), "\r\n", 2) + 2;
  while (line < head_end) {
    const char *eol = memmem(line, (size_t)(head_end + 2 - line), "\r\n", 2);
    size_t n = (size_t)(eol - line);
    if (n >= 18 && strncasecmp(line, "transfer-encoding:", 18) == 0) return -1;
    if (n >= 15 && strncasecmp(line, "content-length:", 15) == 0) {
      char *stop;
      unsigned long v = strtoul(line + 15, &stop, 10);
      if (stop == line + 15 || v > MAX_BODY) return -1;
      *body_len = v;
    }
    line = eol + 2;
  }
  size_t total = (size_t)(head_end + 4 - req) + *body_len;
  return total <= (size_t)(end - req) ? (long)total : 0;
}

/* Answers the request [req, req + len): its head, then body_len bytes. */
static int answer_request(struct conn *c, const char *req, size_t len,
                          size_t body_len) {
  const char *body = req + len - body_len;
  const char *end = body - 2; /* The blank line's CRLF. */
  const char *line_end = memmem(req, len, "\r\n", 2);
  if (line_end == req) {
    c->closing = 1;
    return queue(c, BAD_REQUEST, sizeof BAD_REQUEST - 1);
  }
  int is_head = len > 5 && memcmp(req, "HEAD ", 5) == 0;
  int http10 = line_end - req >= 8 && memcmp(line_end - 8, "HTTP/1.0", 8) == 0;
  int keep_alive = !http10;
  for (const char *line = line_end + 2; line < end;) {
    const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
    if (eol - line >= 11 && strncasecmp(line, "connection:", 11) == 0) {
      if (has_word(line + 11, eol, "close")) keep_alive = 0;
      else if (has_word(line + 11, eol, "keep-alive")) keep_alive = 1;
    }
    line = eol + 2;
  }
  if (!keep_alive) c->closing = 1;
  /* The path: from after the method's space to the next space or '?'. */
  const char *path = memchr(req, ' ', (size_t)(line_end - req));
  if (path == NULL) return queue(c, BAD_REQUEST, sizeof BAD_REQUEST - 1);
  path++;
  size_t plen = strcspn(path, " ?");
#define IS(p) (plen == sizeof(p) - 1 && memcmp(path, p, plen) == 0)
  int post = memcmp(req, "POST ", 5) == 0;
  if (IS("/") || IS("/static"))
    return respond(c, "200 OK", TEXT, HELLO, sizeof HELLO - 1, is_head);
  if (IS("/16k")) return respond(c, "200 OK", BINARY, big, BIG_LEN, is_head);
  if (IS("/echo") && post)
    return respond(c, "200 OK", BINARY, body, body_len, 0);
#undef IS
  return respond(c, "404 Not Found", NULL, NULL, 0, is_head);
}

/* Writes what is queued, once; closes or switches watchers as needed. */
static void flush(struct ev_loop *loop, struct conn *c) {
  size_t left = c->out_len - c->out_off;
  if (left > 0) {
    ssize_t n = write(c->io.fd, c->out + c->out_off, left);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_close(loop, c);
        return;
      }
      n = 0;
    }
    c->out_off += (size_t)n;
    left -= (size_t)n;
  }
  if (left > 0) {
    conn_watch(loop, c, EV_WRITE);
    return;
  }
  c->out_off = c->out_len = 0;
  if (c->closing) {
    conn_close(loop, c);
    return;
  }
  conn_watch(loop, c, EV_READ);
}

static void on_readable(struct ev_loop *loop, struct conn *c) {
  ssize_t n = read(c->io.fd, c->in + c->in_len, IN_CAP - c->in_len);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      return;
    }
    conn_close(loop, c);
    return;
  }
  c->in_len += (size_t)n;
  /* Answer every complete request; one may straddle two reads. */
  size_t start = 0, from = c->seen > 3 ? c->seen - 3 : 0;
  int body_coming = 0;
  while (!c->closing) {
    const char *head_end =
        memmem(c->in + from, c->in_len - from, "\r\n\r\n", 4);
    if (!head_end) break;
    size_t body_len;
    long len = request_length(c->in + start, head_end, c->in + c->in_len,
                              &body_len);
    if (len == 0) { /* Its body is still coming: look again next time. */
      body_coming = 1;
      break;
    }
    int rc = len < 0 ? (c->closing = 1,
                        queue(c, BAD_REQUEST, sizeof BAD_REQUEST - 1))
                     : answer_request(c, c->in + start, (size_t)len, body_len);
    if (rc < 0) {
      conn_close(loop, c);
      return;
    }
    if (len < 0) break;
    start = from = start + (size_t)len;
  }
  if (c->closing) {
    c->in_len = 0;
  } else {
    memmove(c->in, c->in + start, c->in_len - start);
    c->in_len -= start;
    if (c->in_len == IN_CAP) {
      c->closing = 1;
      if (queue(c, TOO_LARGE, sizeof TOO_LARGE - 1) < 0) {
        conn_close(loop, c);
        return;
      }
    }
  }
  c->seen = body_coming ? 0 : c->in_len;
  flush(loop, c);
}

static void on_conn(struct ev_loop *loop, ev_io *w, int revents) {
  struct conn *c = (struct conn *)w;
  if (revents & EV_WRITE) flush(loop, c);
  else if (revents & EV_READ) on_readable(loop, c);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  for (;;) {
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) perror("accept4");
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = malloc(sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->closing = 0;
    c->in_len = c->seen = 0;
    c->out = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
    ev_io_init(&c->io, on_conn, fd, EV_READ);
    ev_io_start(loop, &c->io);
  }
}

static int listen_on(const char *host, const char *port, int reuse_port) {
  struct addrinfo hints = {0}, *found, *ai;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int rc = getaddrinfo(host, port, &hints, &found);
  if (rc != 0) {
    fprintf(stderr, "plain_libev: %s:%s: %s\n", host, port, gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  for (ai = found; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 511) == 0) {
      break;
    }
    close(fd);
    fd = -1;
  }
  if (fd < 0) fprintf(stderr, "plain_libev: cannot listen on %s:%s: %s\n",
                      host, port, strerror(errno));
  freeaddrinfo(found);
  return fd;
}

static void usage(void) {
  fprintf(stderr,
          "Usage: plain_libev [--port N] [--hostname H] [--workers N]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *port = "8000", *host = "127.0.0.1";
  long workers = 1;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--port") == 0) port = argv[++i];
    else if (strcmp(argv[i], "--hostname") == 0) host = argv[++i];
    else if (strcmp(argv[i], "--workers") == 0) workers = atol(argv[++i]);
    else usage();
  }
  if (workers < 1 || workers > 256) usage();
  signal(SIGPIPE, SIG_IGN);

  pid_t parent = getpid();
  for (long i = 1; i < workers; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 1;
    }
    if (pid == 0) {
      /* Die with the first process, even if it is killed. */
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) return 1;
      break;
    }
  }

  int fd = listen_on(host, port, workers > 1);
  if (fd < 0) return 1;
  struct ev_loop *loop = ev_default_loop(0);
  build_date((time_t)ev_now(loop));
  memset(big, 'a', sizeof big);
  ev_periodic tick;
  ev_periodic_init(&tick, on_tick, 0., 1., 0);
  ev_periodic_start(loop, &tick);
  ev_io accept_watcher;
  ev_io_init(&accept_watcher, on_accept, fd, EV_READ);
  ev_io_start(loop, &accept_watcher);
  if (getpid() == parent) {
    printf("Listening on http://%s:%s/ (%ld process%s)\n", host, port,
           workers, workers > 1 ? "es" : "");
    fflush(stdout);
  }
  ev_run(loop, 0);
  return 0;
}
