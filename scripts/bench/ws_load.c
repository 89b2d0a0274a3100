/*
 * ws_load: the WebSocket load client of the benchmark's ws-echo and
 * ws-fanout workloads (wrk speaks HTTP only). One thread on libev,
 * non-blocking sockets, nothing else.
 *
 *   gcc -O2 -I native/src -o ws_load scripts/bench/ws_load.c native/src/sha1.c -lev
 *   ./ws_load echo --port N [--path /ws-echo] [--connections 50]
 *                  [--depth 1] [--size 32] [--warmup 1] [--duration 5]
 *   ./ws_load fanout --port N [--sub-path /ws-sub] [--pub-path /ws-pub]
 *                    [--subscribers 1000] [--window 4] [--size 32]
 *                    [--warmup 1] [--duration 5]
 *
 * echo: every connection sends a text message of --size bytes, waits for
 * it to come back, checks it byte for byte and sends the next, keeping
 * --depth messages in flight. Counts the messages echoed; latency is from
 * queueing a message to reading its echo.
 *
 * fanout: --subscribers connections to --sub-path, then one publisher
 * connection to --pub-path, whose every message the server sends to every
 * subscriber. The loop is closed: at most --window messages are in flight,
 * a message leaving the window when every subscriber has it, so the server
 * is never flooded. Each message starts with its sequence number and every
 * subscriber must receive every one, in order, byte for byte. Counts the
 * messages delivered to subscribers; latency is from publishing a message
 * to one subscriber reading it. A server may subscribe a connection a
 * little after answering 101, so a priming phase first publishes until
 * every subscriber has received the latest message.
 *
 * Every run: connect (at most 64 handshakes at a time) and check each 101
 * answer, its Sec-WebSocket-Accept included; --warmup seconds of load; the
 * measured --duration; then no new messages, the ones in flight are waited
 * for, and each connection sends a close frame and waits up to 2 s for the
 * server's. The client side of RFC 6455: every frame masked with a random
 * key, all three payload length forms, fragmented messages, pings answered
 * with pongs; no extension or subprotocol is asked for, and one in the
 * answer is an error. Text payloads are not checked for UTF-8, since every
 * byte is compared with what was sent.
 *
 * Output: one JSON line on stdout, a summary on stderr; the lines
 * "ws_load: measuring" and "ws_load: measured" on stderr mark the measured
 * part as it starts and ends, for a harness that samples the server around
 * it. Any error (connection refused, a handshake other than 101, a wrong,
 * lost or reordered message, a close or stall before the end) exits 1 with
 * a message on stderr; bad arguments exit 2. The soft limit on open files
 * is raised (up to the hard limit) if the connections need more.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ymo's own SHA-1 (native/src/sha1.c, built in by _build.ts). */
#include "sha1.h"

#define OP_CONTINUATION 0x0
#define OP_TEXT 0x1
#define OP_BINARY 0x2
#define OP_CLOSE 0x8
#define OP_PING 0x9
#define OP_PONG 0xA

/* Handshakes in progress at once: enough to connect 1,000 quickly, few
 * enough not to overflow a server's listen backlog. */
#define MAX_CONNECTING 64
/* The longest handshake answer and the largest message accepted. */
#define MAX_HEAD 16384
#define MAX_MESSAGE (64u << 20)
/* Seconds without progress before the run counts as stalled, and the
 * longest wait for the servers' close frames. */
#define STALL_SECONDS 5
#define CLOSE_SECONDS 2.0
#define PRIME_SECONDS 10.0

/* ------------------------------------------------------------- options */

static struct {
  int fanout;       /* 0: echo mode, 1: fanout mode */
  const char *host; /* an IPv4 address */
  int port;
  const char *path;     /* echo */
  const char *sub_path; /* fanout */
  const char *pub_path; /* fanout */
  int connections;      /* echo connections or fanout subscribers */
  int depth;            /* echo: messages in flight per connection */
  int window;           /* fanout: messages in flight in all */
  size_t size;          /* bytes of each message */
  double warmup, duration;
} cfg = {
    .host = "127.0.0.1",
    .path = "/ws-echo",
    .sub_path = "/ws-sub",
    .pub_path = "/ws-pub",
    .depth = 1,
    .window = 4,
    .size = 32,
    .warmup = 1,
    .duration = 5,
};

static void die(const char *format, ...) {
  va_list args;
  va_start(args, format);
  fputs("ws_load: ", stderr);
  vfprintf(stderr, format, args);
  fputc('\n', stderr);
  va_end(args);
  exit(1);
}

static void usage(const char *why) {
  if (why) fprintf(stderr, "ws_load: %s\n", why);
  fputs(
      "Usage: ws_load echo --port N [--path P] [--connections C] "
      "[--depth D] [--size B] [--warmup S] [--duration S] [--host IP]\n"
      "       ws_load fanout --port N [--sub-path P] [--pub-path P] "
      "[--subscribers C] [--window K] [--size B] [--warmup S] "
      "[--duration S] [--host IP]\n",
      stderr);
  exit(2);
}

static double number_arg(const char *name, const char *text, double min,
                         double max) {
  char *end;
  double value = strtod(text, &end);
  if (end == text || *end != '\0' || !(value >= min && value <= max)) {
    char why[160];
    snprintf(why, sizeof why, "%s must be a number from %g to %g: %s", name,
             min, max, text);
    usage(why);
  }
  return value;
}

static void parse_args(int argc, char **argv) {
  if (argc < 2) usage(NULL);
  if (strcmp(argv[1], "echo") == 0) {
    cfg.fanout = 0;
    cfg.connections = 50;
  } else if (strcmp(argv[1], "fanout") == 0) {
    cfg.fanout = 1;
    cfg.connections = 1000;
  } else {
    usage("the mode is echo or fanout");
  }
  for (int i = 2; i < argc; i += 2) {
    const char *name = argv[i], *value = argv[i + 1];
    if (value == NULL) usage("every option takes a value");
#define IS(option) (strcmp(name, option) == 0)
    if (IS("--host"))
      cfg.host = value;
    else if (IS("--port"))
      cfg.port = (int)number_arg(name, value, 1, 65535);
    else if (IS("--path") && !cfg.fanout)
      cfg.path = value;
    else if (IS("--sub-path") && cfg.fanout)
      cfg.sub_path = value;
    else if (IS("--pub-path") && cfg.fanout)
      cfg.pub_path = value;
    else if (IS("--connections") && !cfg.fanout)
      cfg.connections = (int)number_arg(name, value, 1, 100000);
    else if (IS("--subscribers") && cfg.fanout)
      cfg.connections = (int)number_arg(name, value, 1, 100000);
    else if (IS("--depth") && !cfg.fanout)
      cfg.depth = (int)number_arg(name, value, 1, 1024);
    else if (IS("--window") && cfg.fanout)
      cfg.window = (int)number_arg(name, value, 1, 1024);
    else if (IS("--size"))
      cfg.size = (size_t)number_arg(name, value, 1, 16 << 20);
    else if (IS("--warmup"))
      cfg.warmup = number_arg(name, value, 0, 3600);
    else if (IS("--duration"))
      cfg.duration = number_arg(name, value, 0.1, 3600);
    else {
      char why[160];
      snprintf(why, sizeof why, "unknown option for %s: %s", argv[1], name);
      usage(why);
    }
#undef IS
  }
  if (cfg.port == 0) usage("--port is required");
  /* A fanout message starts with its sequence number, up to 20 digits. */
  if (cfg.fanout && cfg.size < 24) usage("fanout needs --size 24 or more");
}

/* ------------------------------------------------ randomness and hashing */

static uint64_t rng_state;

/* xorshift64*: mask keys only need to be unpredictable to the network
 * path's caches, not to an attacker, so one seed from getrandom will do. */
static uint64_t rng(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1DULL;
}

static void rng_seed(void) {
  if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state) {
    rng_state = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  }
  if (rng_state == 0) rng_state = 0x9E3779B97F4A7C15ULL;
}

/* Base64 of [data, data + len) into `out`, NUL-terminated; `out` holds
 * 4 * ceil(len / 3) + 1 bytes. */
static void base64(const unsigned char *data, size_t len, char *out) {
  static const char digits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)data[i] << 16;
    if (i + 1 < len) v |= (uint32_t)data[i + 1] << 8;
    if (i + 2 < len) v |= data[i + 2];
    out[o++] = digits[v >> 18];
    out[o++] = digits[(v >> 12) & 63];
    out[o++] = i + 1 < len ? digits[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < len ? digits[v & 63] : '=';
  }
  out[o] = '\0';
}

/* ------------------------------------------------------------- latency */

/* Latencies in microseconds, in 1 us buckets below 1,024 us and 128
 * buckets per power of two above (under 1% error), HdrHistogram-style. */
#define HIST_BUCKETS (1024 + 54 * 128)
static struct {
  uint64_t counts[HIST_BUCKETS];
  uint64_t n, sum, max;
} hist;

static unsigned bucket_of(uint64_t us) {
  if (us < 1024) return (unsigned)us;
  int e = 63 - __builtin_clzll(us);
  return 1024 + (unsigned)(e - 10) * 128 + (unsigned)((us >> (e - 7)) & 127);
}

/* The middle of bucket `b`, in us. */
static double bucket_value(unsigned b) {
  if (b < 1024) return b;
  unsigned e = (b - 1024) / 128 + 10, m = (b - 1024) % 128;
  return (double)((uint64_t)(128 + m) << (e - 7)) +
         (double)((uint64_t)1 << (e - 7)) / 2;
}

static void hist_add(uint64_t ns) {
  uint64_t us = ns / 1000;
  hist.counts[bucket_of(us)]++;
  hist.n++;
  hist.sum += us;
  if (us > hist.max) hist.max = us;
}

static double hist_percentile(double p) {
  if (hist.n == 0) return 0;
  uint64_t rank = (uint64_t)(p / 100 * (double)hist.n + 0.999999);
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (unsigned b = 0; b < HIST_BUCKETS; b++) {
    seen += hist.counts[b];
    if (seen >= rank) return bucket_value(b);
  }
  return (double)hist.max;
}

/* ------------------------------------------------------------- state */

/* Bytes read or to write: [off, len) of data, cap allocated. */
struct buf {
  char *data;
  size_t off, len, cap;
};

enum role { ECHO, SUBSCRIBER, PUBLISHER };
enum conn_state { TCP_CONNECTING, HANDSHAKING, OPEN, CLOSE_SENT, CLOSED };

/* One WebSocket connection. All of them live in `conns` for the whole
 * run and are never freed, so a stale pointer in the dirty list is safe. */
struct conn {
  ev_io io; /* first member: the watcher's address is the conn's */
  int id;
  enum role role;
  enum conn_state state;
  struct buf in, out;
  /* The message being received in fragments, and its opcode (0: none). */
  struct buf fragments;
  int fragment_opcode;
  /* In the list of connections with frames to write at the loop's next
   * ev_prepare. */
  int dirty;
  struct conn *next_dirty;
  char accept[29]; /* the Sec-WebSocket-Accept expected */
  /* echo: messages sent and echoed; when each in flight was queued. */
  uint64_t sent, received;
  uint64_t *sent_ns;
  /* subscriber: whether a message arrived yet, and the next one due. */
  int started;
  uint64_t next_seq;
};

/* The phases of the run, in order (fanout alone primes). */
enum phase {
  CONNECTING,
  PRIMING,
  WARMUP,
  MEASURING,
  DRAINING,
  CLOSING,
  FINISHED
};
static const char *const PHASE_NAMES[] = {"connecting", "priming",  "warm-up",
                                          "measuring",  "draining", "closing",
                                          "finished"};

static struct ev_loop *loop;
static enum phase phase = CONNECTING;
static struct conn *conns; /* subscribers, or echo connections */
static struct conn *publisher;
static int n_conns;      /* in `conns`, plus the publisher */
static int next_connect; /* the next of `conns` to connect */
static int connecting;   /* handshakes in progress */
static int n_open;       /* connections that completed the handshake */
static int n_closed;     /* connections done after the close handshake */
static int unclean;      /* connections that did not get the server's close */
static struct conn *dirty_list;
static char *expected;  /* scratch: the payload a message should have */
static char *head_copy; /* scratch: a handshake answer, NUL-terminated */

/* Progress for the stall check: handshakes done and messages received. */
static uint64_t progress, progress_seen;
static int stalled_ticks;

/* Measured: from measure_start to measure_end, in ns. */
static uint64_t measure_start, measure_end;
static uint64_t measured_messages, measured_bytes;
static uint64_t total_sent, total_received; /* echo, all phases */

/* fanout: messages published, and the oldest not yet at every subscriber;
 * deliveries per message in flight and when each was published, indexed
 * by sequence number modulo the window. */
static uint64_t pub_sent, pub_done;
static int *delivered;
static uint64_t *published_ns;
/* fanout priming: subscribers that got the latest message, last tick's. */
static int prime_got, prime_got_seen;
static uint64_t prime_start;

static ev_timer phase_timer, tick_timer;
static ev_prepare flusher;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *conn_name(const struct conn *c) {
  static char name[48];
  if (c->role == PUBLISHER) return "the publisher";
  snprintf(name, sizeof name, "%s %d",
           c->role == ECHO ? "connection" : "subscriber", c->id);
  return name;
}

/* ------------------------------------------------------------- buffers */

static void buf_reserve(struct buf *b, size_t extra) {
  if (b->len + extra <= b->cap) return;
  if (b->off > 0) {
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->len + extra <= b->cap) return;
  }
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + extra) cap *= 2;
  char *data = realloc(b->data, cap);
  if (!data) die("out of memory for %zu bytes", cap);
  b->data = data;
  b->cap = cap;
}

static char *buf_append(struct buf *b, size_t n) {
  buf_reserve(b, n);
  char *p = b->data + b->len;
  b->len += n;
  return p;
}

/* ------------------------------------------------------------- writing */

static void conn_watch(struct conn *c, int events) {
  if ((c->io.events & (EV_READ | EV_WRITE)) == events) return;
  ev_io_stop(loop, &c->io);
  ev_io_set(&c->io, c->io.fd, events);
  ev_io_start(loop, &c->io);
}

static void conn_lost(struct conn *c, const char *why);

/* Writes what `c` has queued, once; waits for writability if the socket
 * takes only part of it. */
static void flush(struct conn *c) {
  if (c->state == CLOSED || c->state == TCP_CONNECTING) return;
  size_t left = c->out.len - c->out.off;
  if (left > 0) {
    ssize_t n = write(c->io.fd, c->out.data + c->out.off, left);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_lost(c, strerror(errno));
        return;
      }
      n = 0;
    }
    c->out.off += (size_t)n;
    left -= (size_t)n;
  }
  if (left == 0) c->out.off = c->out.len = 0;
  conn_watch(c, left > 0 ? EV_READ | EV_WRITE : EV_READ);
}

static void mark_dirty(struct conn *c) {
  if (c->dirty) return;
  c->dirty = 1;
  c->next_dirty = dirty_list;
  dirty_list = c;
}

/* Before the loop waits: one write for each connection with frames queued
 * in this iteration. */
static void on_prepare(struct ev_loop *l, ev_prepare *w, int revents) {
  (void)l;
  (void)w;
  (void)revents;
  while (dirty_list) {
    struct conn *c = dirty_list;
    dirty_list = c->next_dirty;
    c->dirty = 0;
    flush(c);
  }
}

/* Queues one frame of `opcode`, FIN set, masked with a fresh random key. */
static void send_frame(struct conn *c, int opcode, const char *data,
                       size_t len) {
  size_t head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  unsigned char *p = (unsigned char *)buf_append(&c->out, head + 4 + len);
  p[0] = (unsigned char)(0x80 | opcode);
  if (len < 126) {
    p[1] = (unsigned char)(0x80 | len);
  } else if (len < 65536) {
    p[1] = 0x80 | 126;
    p[2] = (unsigned char)(len >> 8);
    p[3] = (unsigned char)len;
  } else {
    p[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) {
      p[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
  }
  uint32_t key = (uint32_t)(rng() >> 32);
  unsigned char *mask = p + head, *payload = mask + 4;
  memcpy(mask, &key, 4);
  for (size_t i = 0; i < len; i++) {
    payload[i] = (unsigned char)data[i] ^ mask[i & 3];
  }
  mark_dirty(c);
}

/* ------------------------------------------------------------- messages */

/* The payload of message `seq` (of echo connection `id`; 0 for fanout):
 * "seq:id:" and then letters that shift with `seq`, `size` bytes in all. */
static void fill_payload(char *p, size_t size, unsigned id, uint64_t seq) {
  char head[48];
  size_t n = (size_t)snprintf(head, sizeof head, "%" PRIu64 ":%u:", seq, id);
  for (size_t i = 0; i < size; i++) {
    p[i] = i < n ? head[i] : (char)('a' + (seq + i) % 26);
  }
}

static void check_payload(const struct conn *c, const char *data, size_t len,
                          unsigned id, uint64_t seq) {
  fill_payload(expected, cfg.size, id, seq);
  if (len != cfg.size || memcmp(data, expected, len) != 0) {
    die("%s: message %" PRIu64
        " differs from the one sent: %zu bytes "
        "\"%.*s%s\", expected %zu bytes \"%.*s%s\"",
        conn_name(c), seq, len, (int)(len < 48 ? len : 48), data,
        len > 48 ? "..." : "", cfg.size, (int)(cfg.size < 48 ? cfg.size : 48),
        expected, cfg.size > 48 ? "..." : "");
  }
}

/* echo: keeps --depth messages in flight on `c`. */
static void echo_send(struct conn *c) {
  while (c->sent - c->received < (uint64_t)cfg.depth) {
    fill_payload(expected, cfg.size, (unsigned)c->id, c->sent);
    c->sent_ns[c->sent % (uint64_t)cfg.depth] = now_ns();
    send_frame(c, OP_TEXT, expected, cfg.size);
    c->sent++;
    total_sent++;
  }
}

static void begin_close(void);

static void echo_message(struct conn *c, const char *data, size_t len) {
  if (c->received == c->sent) {
    die("%s: a message arrived that was never sent: \"%.*s\"", conn_name(c),
        (int)(len < 48 ? len : 48), data);
  }
  uint64_t seq = c->received;
  check_payload(c, data, len, (unsigned)c->id, seq);
  uint64_t latency = now_ns() - c->sent_ns[seq % (uint64_t)cfg.depth];
  c->received++;
  total_received++;
  progress++;
  if (phase == MEASURING) {
    measured_messages++;
    hist_add(latency);
  }
  if (phase == WARMUP || phase == MEASURING) {
    echo_send(c);
  } else if (phase == DRAINING && total_received == total_sent) {
    begin_close();
  }
}

/* fanout: keeps --window messages in flight from the publisher. */
static void publish_more(void) {
  while (pub_sent - pub_done < (uint64_t)cfg.window) {
    fill_payload(expected, cfg.size, 0, pub_sent);
    published_ns[pub_sent % (uint64_t)cfg.window] = now_ns();
    send_frame(publisher, OP_TEXT, expected, cfg.size);
    pub_sent++;
  }
}

static void begin_run(void);

static void subscriber_message(struct conn *c, const char *data, size_t len) {
  char digits[24];
  size_t n = len < sizeof digits - 1 ? len : sizeof digits - 1;
  memcpy(digits, data, n);
  digits[n] = '\0';
  char *end;
  uint64_t seq = strtoull(digits, &end, 10);
  if (end == digits || *end != ':') {
    die("%s: a message without a sequence number: \"%.*s\"", conn_name(c),
        (int)n, data);
  }
  if (!c->started) {
    /* Only priming may find a subscriber that has not had a message. */
    if (phase != PRIMING) die("%s: its first message came late", conn_name(c));
    c->started = 1;
    c->next_seq = seq;
  }
  if (seq != c->next_seq) {
    die("%s: message %" PRIu64 " arrived where %" PRIu64
        " was due (lost or reordered)",
        conn_name(c), seq, c->next_seq);
  }
  if (seq >= pub_sent) {
    die("%s: message %" PRIu64 " arrived, never published", conn_name(c), seq);
  }
  check_payload(c, data, len, 0, seq);
  c->next_seq++;
  progress++;
  if (phase == PRIMING) {
    if (seq + 1 == pub_sent && ++prime_got == cfg.connections) {
      pub_done = pub_sent;
      begin_run();
    }
    return;
  }
  uint64_t slot = seq % (uint64_t)cfg.window;
  if (phase == MEASURING) {
    measured_messages++;
    hist_add(now_ns() - published_ns[slot]);
  }
  /* Every subscriber that has message seq had seq - 1 before it, so
   * messages reach all subscribers in order: the window slides here. */
  if (++delivered[slot] < cfg.connections) return;
  delivered[slot] = 0;
  pub_done = seq + 1;
  if (phase == WARMUP || phase == MEASURING) {
    publish_more();
  } else if (phase == DRAINING && pub_done == pub_sent) {
    begin_close();
  }
}

static void on_message(struct conn *c, int opcode, const char *data,
                       size_t len) {
  if (c->state == CLOSE_SENT) return; /* Sent before our close arrived. */
  if (opcode != OP_TEXT) {
    die("%s: a binary message where text was sent", conn_name(c));
  }
  switch (c->role) {
    case ECHO:
      echo_message(c, data, len);
      break;
    case SUBSCRIBER:
      subscriber_message(c, data, len);
      break;
    case PUBLISHER:
      die("the publisher got a message, which the server should only send to "
          "subscribers: \"%.*s\"",
          (int)(len < 48 ? len : 48), data);
  }
}

/* ------------------------------------------------------------- closing */

static void finish(void) {
  phase = FINISHED;
  ev_break(loop, EVBREAK_ALL);
}

static void conn_closed(struct conn *c, int clean) {
  ev_io_stop(loop, &c->io);
  close(c->io.fd);
  c->state = CLOSED;
  if (!clean) unclean++;
  if (++n_closed == n_conns) finish();
}

/* After the measured time and the messages in flight: a close frame on
 * every connection, then up to CLOSE_SECONDS for the servers' answers. */
static void begin_close(void) {
  phase = CLOSING;
  static const char normal[2] = {0x03, (char)0xE8}; /* 1000: normal */
  for (int i = 0; i < n_conns; i++) {
    struct conn *c = i < cfg.connections ? &conns[i] : publisher;
    if (c->state != OPEN) continue;
    send_frame(c, OP_CLOSE, normal, sizeof normal);
    c->state = CLOSE_SENT;
  }
  ev_timer_stop(loop, &phase_timer);
  ev_timer_set(&phase_timer, CLOSE_SECONDS, 0);
  ev_timer_start(loop, &phase_timer);
}

/* The connection ended (EOF or an error) without our asking. */
static void conn_lost(struct conn *c, const char *why) {
  if (c->state == CLOSE_SENT) {
    conn_closed(c, 0);
    return;
  }
  die("%s: %s while %s", conn_name(c), why, PHASE_NAMES[phase]);
}

/* ------------------------------------------------------------- reading */

/* Handles one complete frame from the server. */
static void on_frame(struct conn *c, int fin, int opcode, const char *data,
                     size_t len) {
  if (opcode & 0x8) {
    /* Control frames are never fragmented and carry at most 125 bytes. */
    if (!fin || len > 125) {
      die("%s: a control frame fragmented or longer than 125 bytes",
          conn_name(c));
    }
    if (opcode == OP_PING) {
      if (c->state == OPEN) send_frame(c, OP_PONG, data, len);
    } else if (opcode == OP_CLOSE) {
      int code = len >= 2
                     ? ((unsigned char)data[0] << 8) | (unsigned char)data[1]
                     : 1005;
      if (c->state == CLOSE_SENT) {
        conn_closed(c, 1);
      } else {
        die("%s: the server closed it (code %d%s%.*s) while %s", conn_name(c),
            code, len > 2 ? ", " : "", (int)(len > 2 ? len - 2 : 0), data + 2,
            PHASE_NAMES[phase]);
      }
    } else if (opcode != OP_PONG) {
      die("%s: a frame with the reserved opcode %d", conn_name(c), opcode);
    }
    return;
  }
  if (opcode == OP_CONTINUATION) {
    if (c->fragment_opcode == 0) {
      die("%s: a continuation frame with no message begun", conn_name(c));
    }
    if (c->fragments.len + len > MAX_MESSAGE) {
      die("%s: a message over %u bytes", conn_name(c), MAX_MESSAGE);
    }
    memcpy(buf_append(&c->fragments, len), data, len);
    if (fin) {
      on_message(c, c->fragment_opcode, c->fragments.data, c->fragments.len);
      c->fragment_opcode = 0;
      c->fragments.len = 0;
    }
  } else if (opcode == OP_TEXT || opcode == OP_BINARY) {
    if (c->fragment_opcode != 0) {
      die("%s: a new message inside a fragmented one", conn_name(c));
    }
    if (fin) {
      on_message(c, opcode, data, len);
    } else {
      c->fragment_opcode = opcode;
      c->fragments.len = 0;
      memcpy(buf_append(&c->fragments, len), data, len);
    }
  } else {
    die("%s: a frame with the reserved opcode %d", conn_name(c), opcode);
  }
}

/* Handles every complete frame in `c->in`. */
static void read_frames(struct conn *c) {
  while (c->state == OPEN || c->state == CLOSE_SENT) {
    const unsigned char *p = (unsigned char *)c->in.data + c->in.off;
    size_t avail = c->in.len - c->in.off;
    if (avail < 2) return;
    int fin = p[0] & 0x80, opcode = p[0] & 0x0F;
    if (p[0] & 0x70) {
      die("%s: a frame with RSV bits set, and no extension agreed",
          conn_name(c));
    }
    if (p[1] & 0x80) die("%s: a masked frame from the server", conn_name(c));
    size_t head = 2;
    uint64_t len = p[1] & 0x7F;
    if (len == 126) {
      if (avail < 4) return;
      len = (uint64_t)p[2] << 8 | p[3];
      head = 4;
    } else if (len == 127) {
      if (avail < 10) return;
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
      head = 10;
    }
    if (len > MAX_MESSAGE) {
      die("%s: a frame of %" PRIu64 " bytes, over the %u this client takes",
          conn_name(c), len, MAX_MESSAGE);
    }
    if (avail < head + len) return;
    c->in.off += head + (size_t)len;
    on_frame(c, fin, opcode, (const char *)p + head, (size_t)len);
  }
}

/* Copies the value of header `name` in the NUL-terminated `head` into
 * `out` (cap bytes, truncated to fit); NULL when there is no such header. */
static const char *header_value(const char *head, const char *name, char *out,
                                size_t cap) {
  size_t n = strlen(name);
  for (const char *line = strstr(head, "\r\n"); line;
       line = strstr(line, "\r\n")) {
    line += 2;
    if (strncasecmp(line, name, n) != 0 || line[n] != ':') continue;
    const char *value = line + n + 1;
    while (*value == ' ' || *value == '\t') value++;
    size_t len = strcspn(value, "\r");
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t')) len--;
    if (len >= cap) len = cap - 1;
    memcpy(out, value, len);
    out[len] = '\0';
    return out;
  }
  return NULL;
}

static void on_open(struct conn *c);

/* Checks the handshake answer once all of it is in; 0 until then. */
static int read_handshake(struct conn *c) {
  char *start = c->in.data + c->in.off;
  size_t avail = c->in.len - c->in.off;
  char *end = memmem(start, avail, "\r\n\r\n", 4);
  if (!end) {
    if (avail > MAX_HEAD)
      die("%s: a handshake answer over %d bytes", conn_name(c), MAX_HEAD);
    return 0;
  }
  size_t head_len = (size_t)(end - start) + 2;
  memcpy(head_copy, start, head_len);
  head_copy[head_len] = '\0';
  c->in.off += head_len + 2;
  size_t line = strcspn(head_copy, "\r");
  if (strncmp(head_copy, "HTTP/1.1 101", 12) != 0) {
    die("%s: GET %s answered \"%.*s\", not 101 Switching Protocols",
        conn_name(c),
        c->role == ECHO         ? cfg.path
        : c->role == SUBSCRIBER ? cfg.sub_path
                                : cfg.pub_path,
        (int)line, head_copy);
  }
  char value[256];
  const char *upgrade = header_value(head_copy, "upgrade", value, sizeof value);
  if (!upgrade || strcasecmp(upgrade, "websocket") != 0) {
    die("%s: 101 without Upgrade: websocket", conn_name(c));
  }
  const char *connection =
      header_value(head_copy, "connection", value, sizeof value);
  if (!connection || !strcasestr(connection, "upgrade")) {
    die("%s: 101 without Connection: upgrade", conn_name(c));
  }
  const char *accept =
      header_value(head_copy, "sec-websocket-accept", value, sizeof value);
  if (!accept || strcmp(accept, c->accept) != 0) {
    die("%s: Sec-WebSocket-Accept is %s, expected %s", conn_name(c),
        accept ? accept : "missing", c->accept);
  }
  const char *extensions =
      header_value(head_copy, "sec-websocket-extensions", value, sizeof value);
  if (extensions) {
    die("%s: the server chose the extension \"%s\", which was not offered",
        conn_name(c), extensions);
  }
  if (header_value(head_copy, "sec-websocket-protocol", value, sizeof value)) {
    die("%s: the server chose a subprotocol, and none was offered",
        conn_name(c));
  }
  c->state = OPEN;
  on_open(c);
  return 1;
}

static void conn_read(struct conn *c) {
  buf_reserve(&c->in, 65536);
  ssize_t n = read(c->io.fd, c->in.data + c->in.len, c->in.cap - c->in.len);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    conn_lost(c, strerror(errno));
    return;
  }
  if (n == 0) {
    conn_lost(c, "the server closed the connection");
    return;
  }
  c->in.len += (size_t)n;
  if (phase == MEASURING) measured_bytes += (size_t)n;
  if (c->state == HANDSHAKING && !read_handshake(c)) return;
  read_frames(c);
  if (c->in.off == c->in.len) c->in.off = c->in.len = 0;
}

/* ------------------------------------------------------------- connecting */

static struct sockaddr_in server_addr;

static void on_io(struct ev_loop *l, ev_io *w, int revents);

static void conn_connect(struct conn *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0 &&
      errno != EINPROGRESS) {
    die("cannot connect to %s:%d: %s", cfg.host, cfg.port, strerror(errno));
  }
  c->state = TCP_CONNECTING;
  connecting++;
  ev_io_init(&c->io, on_io, fd, EV_WRITE);
  ev_io_start(loop, &c->io);
}

/* Starts handshakes until MAX_CONNECTING are in progress or every
 * subscriber or echo connection has begun; then the publisher, alone. */
static void connect_more(void) {
  while (connecting < MAX_CONNECTING && next_connect < cfg.connections) {
    conn_connect(&conns[next_connect++]);
  }
  if (publisher && n_open == cfg.connections &&
      publisher->state == TCP_CONNECTING && publisher->io.fd < 0) {
    conn_connect(publisher);
  }
}

static void on_connected(struct conn *c) {
  int error = 0;
  socklen_t len = sizeof error;
  getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &error, &len);
  if (error) {
    die("cannot connect to %s:%d: %s", cfg.host, cfg.port, strerror(error));
  }
  unsigned char nonce[16];
  for (int i = 0; i < 16; i += 8) {
    uint64_t r = rng();
    memcpy(nonce + i, &r, 8);
  }
  char key[25], both[64];
  base64(nonce, sizeof nonce, key);
  unsigned char digest[20];
  int n = snprintf(both, sizeof both, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11",
                   key);
  ymo__sha1(both, (size_t)n, digest);
  base64(digest, sizeof digest, c->accept);
  const char *path = c->role == ECHO         ? cfg.path
                     : c->role == SUBSCRIBER ? cfg.sub_path
                                             : cfg.pub_path;
  char request[512];
  n = snprintf(request, sizeof request,
               "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n",
               path, cfg.host, cfg.port, key);
  if (n >= (int)sizeof request) die("the path is too long: %s", path);
  memcpy(buf_append(&c->out, (size_t)n), request, (size_t)n);
  c->state = HANDSHAKING;
  flush(c);
}

static void on_io(struct ev_loop *l, ev_io *w, int revents) {
  (void)l;
  struct conn *c = (struct conn *)w;
  if (c->state == TCP_CONNECTING) {
    on_connected(c);
    return;
  }
  if (revents & EV_WRITE) flush(c);
  if ((revents & EV_READ) && c->state != CLOSED) conn_read(c);
}

/* ------------------------------------------------------------- phases */

static void begin_measure(void) {
  phase = MEASURING;
  measure_start = now_ns();
  fputs("ws_load: measuring\n", stderr);
  ev_timer_set(&phase_timer, cfg.duration, 0);
  ev_timer_start(loop, &phase_timer);
}

/* Every connection is open (and, for fanout, every subscriber primed). */
static void begin_run(void) {
  if (cfg.warmup > 0) {
    phase = WARMUP;
    ev_timer_set(&phase_timer, cfg.warmup, 0);
    ev_timer_start(loop, &phase_timer);
  } else {
    begin_measure();
  }
  if (cfg.fanout) {
    publish_more();
  } else {
    for (int i = 0; i < cfg.connections; i++) echo_send(&conns[i]);
  }
}

static void begin_drain(void) {
  measure_end = now_ns();
  phase = DRAINING;
  fputs("ws_load: measured\n", stderr);
  if (cfg.fanout ? pub_done == pub_sent : total_received == total_sent) {
    begin_close();
  }
}

static void on_phase_timer(struct ev_loop *l, ev_timer *w, int revents) {
  (void)l;
  (void)w;
  (void)revents;
  if (phase == WARMUP)
    begin_measure();
  else if (phase == MEASURING)
    begin_drain();
  else if (phase == CLOSING)
    finish();
}

static void prime(void) {
  fill_payload(expected, cfg.size, 0, pub_sent);
  send_frame(publisher, OP_TEXT, expected, cfg.size);
  pub_sent++;
  prime_got = prime_got_seen = 0;
}

static void on_open(struct conn *c) {
  progress++;
  n_open += c != publisher;
  connecting--;
  if (c == publisher) {
    phase = PRIMING;
    prime_start = now_ns();
    prime();
    return;
  }
  connect_more();
  if (n_open == cfg.connections && !publisher) begin_run();
}

/* Every 50 ms: priming's next message, and the stall check. */
static void on_tick(struct ev_loop *l, ev_timer *w, int revents) {
  (void)l;
  (void)w;
  (void)revents;
  if (phase == PRIMING) {
    /* Publish again when the latest message has stopped spreading: some
     * subscriber was not subscribed yet when it went out. */
    if (prime_got == prime_got_seen)
      prime();
    else
      prime_got_seen = prime_got;
    if (now_ns() - prime_start > (uint64_t)(PRIME_SECONDS * 1e9)) {
      die("after %.0f s of publishing, %d of %d subscribers have the latest "
          "message",
          PRIME_SECONDS, prime_got, cfg.connections);
    }
    return;
  }
  if (phase == CLOSING) return;
  if (progress != progress_seen) {
    progress_seen = progress;
    stalled_ticks = 0;
    return;
  }
  if (++stalled_ticks < STALL_SECONDS * 20) return;
  if (phase == CONNECTING) {
    die("no handshake completed for %d s: %d of %d connections open",
        STALL_SECONDS, n_open, n_conns);
  }
  if (cfg.fanout) {
    int behind = 0;
    for (int i = 0; i < cfg.connections; i++) {
      behind += conns[i].next_seq == pub_done;
    }
    die("no message arrived for %d s while %s: %d of %d subscribers never "
        "got message %" PRIu64 " (lost)",
        STALL_SECONDS, PHASE_NAMES[phase], behind, cfg.connections, pub_done);
  }
  die("no echo arrived for %d s while %s: %" PRIu64 " messages in flight",
      STALL_SECONDS, PHASE_NAMES[phase], total_sent - total_received);
}

/* ------------------------------------------------------------- main */

/* Raises the soft limit on open files if the connections need more. */
static void raise_fd_limit(int needed) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur >= (rlim_t)needed) {
    return;
  }
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < (rlim_t)needed) {
    die("%d connections need %d open files, and the hard limit is %llu "
        "(raise it: ulimit -Hn, or limits.conf)",
        n_conns, needed, (unsigned long long)limit.rlim_max);
  }
  limit.rlim_cur = (rlim_t)needed;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    die("cannot raise the open-file limit to %d: %s", needed, strerror(errno));
  }
}

static void print_result(void) {
  double seconds = (double)(measure_end - measure_start) / 1e9;
  double rate = (double)measured_messages / seconds;
  double p50 = hist_percentile(50), p75 = hist_percentile(75),
         p90 = hist_percentile(90), p99 = hist_percentile(99);
  double avg = hist.n ? (double)hist.sum / (double)hist.n : 0;
  printf(
      "{\"mode\":\"%s\",\"connections\":%d,\"%s\":%d,\"size\":%zu,"
      "\"seconds\":%.3f,\"messages\":%" PRIu64
      ",\"messagesPerSec\":%.1f,"
      "\"latencyAvgUs\":%.1f,\"latencyP50Us\":%.1f,\"latencyP75Us\":%.1f,"
      "\"latencyP90Us\":%.1f,\"latencyP99Us\":%.1f,\"latencyMaxUs\":%" PRIu64
      ",\"bytesRead\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"uncleanCloses\":%d}\n",
      cfg.fanout ? "fanout" : "echo", cfg.connections,
      cfg.fanout ? "window" : "depth", cfg.fanout ? cfg.window : cfg.depth,
      cfg.size, seconds, measured_messages, rate, avg, p50, p75, p90, p99,
      hist.max, measured_bytes, cfg.fanout ? pub_sent : total_sent, unclean);
  fflush(stdout);
  fprintf(stderr,
          "ws_load %s: %d %s, %s %d, %zu B: %.0f msgs/s over %.2f s, "
          "latency p50 %.0f us, p99 %.0f us, max %" PRIu64 " us",
          cfg.fanout ? "fanout" : "echo", cfg.connections,
          cfg.fanout ? "subscribers" : "connections",
          cfg.fanout ? "window" : "depth", cfg.fanout ? cfg.window : cfg.depth,
          cfg.size, rate, seconds, p50, p99, hist.max);
  if (unclean) {
    fprintf(stderr,
            "; %d of %d connections closed without the server's "
            "close frame",
            unclean, n_conns);
  }
  fputc('\n', stderr);
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  rng_seed();
  memset(&server_addr, 0, sizeof server_addr);
  server_addr.sin_family = AF_INET;
  server_addr.sin_port = htons((uint16_t)cfg.port);
  if (inet_pton(AF_INET, cfg.host, &server_addr.sin_addr) != 1) {
    usage("--host must be an IPv4 address");
  }
  n_conns = cfg.connections + cfg.fanout;
  raise_fd_limit(n_conns + 32);

  conns = calloc((size_t)n_conns, sizeof *conns);
  expected = malloc(cfg.size);
  head_copy = malloc(MAX_HEAD + 1);
  if (!conns || !expected || !head_copy) die("out of memory");
  for (int i = 0; i < n_conns; i++) {
    struct conn *c = &conns[i];
    c->id = i;
    c->io.fd = -1;
    c->role = cfg.fanout ? SUBSCRIBER : ECHO;
    if (!cfg.fanout) {
      c->sent_ns = calloc((size_t)cfg.depth, sizeof *c->sent_ns);
      if (!c->sent_ns) die("out of memory");
    }
  }
  if (cfg.fanout) {
    publisher = &conns[cfg.connections];
    publisher->role = PUBLISHER;
    delivered = calloc((size_t)cfg.window, sizeof *delivered);
    published_ns = calloc((size_t)cfg.window, sizeof *published_ns);
    if (!delivered || !published_ns) die("out of memory");
  }

  loop = ev_default_loop(0);
  ev_prepare_init(&flusher, on_prepare);
  ev_prepare_start(loop, &flusher);
  ev_init(&phase_timer, on_phase_timer);
  /* 50 ms: priming resends promptly; the stall check counts 20 ticks a
   * second. */
  ev_timer_init(&tick_timer, on_tick, 0.05, 0.05);
  ev_timer_start(loop, &tick_timer);
  connect_more();
  ev_run(loop, 0);

  if (measured_messages == 0) {
    die("no message completed in the %.1f s measured", cfg.duration);
  }
  print_result();
  return 0;
}
