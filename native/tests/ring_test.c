/* Batched reads and writes (ring.c): many keep-alive clients answered by
 * a C driver through the handoff, so L finds several connections readable
 * in one loop iteration, and its drains give output to several at once,
 * and reads and writes them in batches; bodies from 13 bytes to 4 MB, and
 * one client with a small receive buffer that reads late (a batched send
 * that the socket takes only in part, then -EAGAIN, then writability).
 * Every body is checked byte for byte; where this machine has a ring,
 * batches must have carried several reads and several writes. */
#include "test_util.h"
#include "server.h" /* The connection set's ring and its counters. */

#define BIG (4 * 1024 * 1024)
static uint8_t pattern[BIG + 64];

static size_t size_of(int i) {
  static const size_t sizes[] = {13, 3000, 70000, 200};
  return sizes[i % 4];
}

/* Answers "/s/SIZE/SEED" with SIZE bytes of the pattern from SEED. */
static void *driver_main(void *arg) {
  ymo_worker_t *w = arg;
  takebuf_t tb = {.p = malloc(1 << 16), .cap = 1 << 16};
  for (;;) {
    int n = ymo_worker_wait(w);
    if (n == YMO_ESHUTDOWN) break;
    CHECK(n >= 0);
    int32_t got = take_all(w, &tb);
    for (size_t off = 0; off < (size_t)got;) {
      rec_t r;
      off += parse_record(tb.p + off, (size_t)got - off, &r);
      if (r.flags & YMO_REQF_ABORT) continue;
      char url[64];
      size_t size;
      int seed;
      CHECK(sscanf(rec_url(&r, url, sizeof(url)), "/s/%zu/%d", &size, &seed) ==
            2);
      CHECK_OK(ymo_worker_respond(w, r.id, r.gen, 200, NULL, 0,
                                  pattern + seed, (int32_t)size,
                                  YMO_RESP_DONE));
    }
  }
  takebuf_free(&tb);
  free(tb.in);
  return NULL;
}

static void expect_sized(int fd, size_t size, int seed, const char *what) {
  expect_t e = {0};
  expect_head(&e, 200, (long long)size, false, false, false, "");
  db_put(&e.b, pattern + seed, size);
  EXPECT_RESPONSE(fd, &e, what);
  db_free(&e.b);
}

typedef struct {
  int port, index;
} client_t;

static void *client_main(void *arg) {
  client_t *cl = arg;
  int fd = client_connect(cl->port);
  char path[64];
  for (int i = 0; i < 40; i++) {
    int seed = (cl->index * 7 + i) % 64;
    snprintf(path, sizeof(path), "/s/%zu/%d", size_of(i), seed);
    send_get(fd, path);
    expect_sized(fd, size_of(i), seed, "body written through the ring");
  }
  close(fd);
  return NULL;
}

static void *slow_client_main(void *arg) {
  client_t *cl = arg;
  int fd = client_connect_sized(cl->port, 16384);
  CHECKF(fd >= 0, "connect: %s", strerror(-fd));
  char path[64];
  snprintf(path, sizeof(path), "/s/%d/5", BIG);
  send_get(fd, path);
  sleep_ms(50); /* The server's send stops part way meanwhile. */
  expect_sized(fd, BIG, 5, "big body to a late reader");
  close(fd);
  return NULL;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  test_deadline(60);
  for (size_t k = 0; k < sizeof(pattern); k++)
    pattern[k] = (uint8_t)('a' + (k * 7 + k / 977) % 26);
  int port;
  ymo_server_t *srv = test_server(1, &port);
  CHECK_OK(ymo_server_start(srv));
  ymo_worker_t *w = ymo_server_worker(srv, 0);
  CHECK_OK(ymo_worker_start(w));
  pthread_t driver;
  CHECK(pthread_create(&driver, NULL, driver_main, w) == 0);
  enum { CLIENTS = 16 };
  client_t clients[CLIENTS + 1];
  pthread_t threads[CLIENTS + 1];
  for (int i = 0; i <= CLIENTS; i++) {
    clients[i] = (client_t){.port = port, .index = i};
    CHECK(pthread_create(&threads[i], NULL,
                         i == CLIENTS ? slow_client_main : client_main,
                         &clients[i]) == 0);
  }
  for (int i = 0; i <= CLIENTS; i++) pthread_join(threads[i], NULL);
  CHECK_OK(ymo_server_shutdown(srv, 1000));
  pthread_join(driver, NULL);
  bool ring = srv->conns.ring != NULL;
  ymo_conns_t *c = &srv->conns;
  unsigned long writes = c->stat_writes, write_batches = c->stat_write_batches;
  unsigned long reads = c->stat_reads, read_batches = c->stat_read_batches;
  ymo_server_free(srv);
  if (ring) {
    CHECKF(writes > write_batches && write_batches > 0,
           "%lu sends in %lu batches: the ring never wrote to several "
           "connections at once", writes, write_batches);
    CHECKF(reads > read_batches && read_batches > 0,
           "%lu receives in %lu batches: the ring never read from several "
           "connections at once", reads, read_batches);
    printf("ring: ok (%lu sends in %lu batches, %lu receives in %lu)\n",
           writes, write_batches, reads, read_batches);
  } else {
    printf("ring: ok (no ring here: every read and write was plain)\n");
  }
  return 0;
}
