/* Shards (ymo_server_add_shard): one listener, several loops. The leader
 * accepts and deals connections round-robin to itself and its shard; each
 * loop has its own worker, driven here by a C thread that answers with the
 * name of its loop and, like server/_worker.ts when busy, borrows its own
 * loop for a few passes. Under ThreadSanitizer this covers two loans at once
 * and the leader handing sockets to the shard's loop.
 *
 * "deal": sequential connections alternate between the loops, then many
 * concurrent keep-alive clients are all answered, and a graceful shutdown
 * of both ends every waiter.
 * "limit": maxConnections counts the connections of both loops. */
#include "test_util.h"

typedef struct {
  ymo_worker_t *w;
  const char *name;
  atomic_long answered;
} driver_t;

static long answer_all(driver_t *d, takebuf_t *tb) {
  int32_t n = take_all(d->w, tb);
  long answered = 0;
  for (size_t off = 0; off < (size_t)n;) {
    rec_t r;
    off += parse_record(tb->p + off, (size_t)n - off, &r);
    if (r.flags & YMO_REQF_ABORT) continue;
    int rc = ymo_worker_respond(d->w, r.id, r.gen, 200, NULL, 0,
                                (const uint8_t *)d->name,
                                (int32_t)strlen(d->name), YMO_RESP_DONE);
    CHECKF(rc == 0 || rc == YMO_EPIPE, "respond: %s", ymo_strerror(rc));
    answered++;
  }
  atomic_fetch_add(&d->answered, answered);
  return answered;
}

static void *drive(void *arg) {
  driver_t *d = arg;
  takebuf_t tb = {0};
  CHECK_OK(ymo_worker_start(d->w));
  for (;;) {
    int rc = ymo_worker_wait(d->w);
    if (rc == YMO_ESHUTDOWN) break;
    CHECK(rc >= 0);
    answer_all(d, &tb);
    /* A short busy period on this thread's own loop. */
    if (ymo_worker_acquire_loop(d->w) == 1) {
      for (int i = 0; i < 20; i++) {
        int n = ymo_worker_poll(d->w);
        if (n < 0) break;
        if (n > 0) answer_all(d, &tb);
      }
      ymo_worker_release_loop(d->w);
    }
  }
  takebuf_free(&tb);
  return NULL;
}

typedef struct {
  ymo_server_t *leader, *shard;
  driver_t drivers[2];
  pthread_t threads[2];
  int port;
} pair_t;

static void pair_start(pair_t *p, int64_t max_connections) {
  int err = 1;
  p->leader = test_server(1, &p->port);
  p->shard = ymo_server_create(1, &err);
  CHECK(p->shard != NULL && err == 0);
  if (max_connections > 0) {
    CHECK_OK(ymo_server_set_option(p->leader, YMO_OPT_MAX_CONNECTIONS,
                                   max_connections));
    CHECK_OK(ymo_server_set_option(p->shard, YMO_OPT_MAX_CONNECTIONS,
                                   max_connections));
  }
  /* Refused: a shard of itself, a shard that listens, a leader as shard. */
  CHECK_EQ(ymo_server_add_shard(p->leader, p->leader), YMO_EINVAL);
  CHECK_EQ(ymo_server_add_shard(p->shard, p->leader), YMO_EINVAL);
  CHECK_OK(ymo_server_add_shard(p->leader, p->shard));
  CHECK_EQ(ymo_server_add_shard(p->shard, p->leader), YMO_EINVAL);
  /* A shard does not listen, yet starts. */
  CHECK_OK(ymo_server_start(p->shard));
  CHECK_OK(ymo_server_start(p->leader));
  CHECK_EQ(ymo_server_add_shard(p->leader, p->shard), YMO_EINVAL);
  const char *names[2] = {"leader", "shard"};
  ymo_server_t *servers[2] = {p->leader, p->shard};
  for (int i = 0; i < 2; i++) {
    p->drivers[i].w = ymo_server_worker(servers[i], 0);
    p->drivers[i].name = names[i];
    atomic_init(&p->drivers[i].answered, 0);
    CHECK(pthread_create(&p->threads[i], NULL, drive, &p->drivers[i]) == 0);
  }
}

static void pair_stop(pair_t *p) {
  CHECK_OK(ymo_server_shutdown(p->leader, 5000));
  CHECK_OK(ymo_server_shutdown(p->shard, 5000));
  for (int i = 0; i < 2; i++) pthread_join(p->threads[i], NULL);
  /* The leader first: its loop deals to the shard until it stops. */
  CHECK_OK(ymo_server_stop(p->leader));
  CHECK_OK(ymo_server_stop(p->shard));
  ymo_server_free(p->shard);
  ymo_server_free(p->leader);
}

/* One request on a new connection that the server closes after it; the
 * body names the loop that answered. */
static void get_once(int port, dbuf_t *body) {
  int fd = client_connect(port);
  const char req[] = "GET / HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n";
  send_all(fd, req, sizeof(req) - 1);
  dbuf_t all = {0};
  CHECK_EQ(recv_until_close(fd, &all), 0);
  close(fd);
  db_put(&all, "", 1);
  const char *sep = strstr((const char *)all.p, "\r\n\r\n");
  CHECKF(sep != NULL && strncmp((const char *)all.p, "HTTP/1.1 200", 12) == 0,
         "response: %s", (const char *)all.p);
  db_clear(body);
  db_puts(body, sep + 4);
  db_free(&all);
}

#define CLIENTS 24
#define REQUESTS 30

static void *client(void *arg) {
  int port = *(int *)arg;
  int fd = client_connect(port);
  for (int i = 0; i < REQUESTS; i++) {
    send_get(fd, "/");
    expect_t e = {0}, other = {0};
    uint8_t buf[1024];
    /* Either loop may hold this connection: read the longer answer's
     * worth and check it is one of the two. */
    expect_head(&e, 200, 6, false, false, false, "");
    db_puts(&e.b, "leader");
    expect_head(&other, 200, 5, false, false, false, "");
    db_puts(&other.b, "shard");
    size_t want = other.b.len;
    size_t got = recv_n(fd, buf, want);
    CHECK_EQ(got, want);
    if (!response_matches(&other, buf, got)) {
      CHECK_EQ(recv_n(fd, buf + got, e.b.len - got), e.b.len - got);
      CHECK_RESPONSE(&e, buf, e.b.len, "leader's answer");
    }
    db_free(&e.b);
    db_free(&other.b);
  }
  close(fd);
  return NULL;
}

static void test_deal(void) {
  pair_t p;
  pair_start(&p, 0);
  dbuf_t body = {0};
  for (int i = 0; i < 8; i++) {
    get_once(p.port, &body);
    const char *want = i % 2 == 0 ? "leader" : "shard";
    CHECKF(strcmp((const char *)body.p, want) == 0,
           "connection %d answered by %s, not %s", i, (const char *)body.p,
           want);
  }
  db_free(&body);
  pthread_t clients[CLIENTS];
  for (int i = 0; i < CLIENTS; i++)
    CHECK(pthread_create(&clients[i], NULL, client, &p.port) == 0);
  for (int i = 0; i < CLIENTS; i++) pthread_join(clients[i], NULL);
  long a = atomic_load(&p.drivers[0].answered);
  long b = atomic_load(&p.drivers[1].answered);
  CHECK_EQ(a + b, 8 + CLIENTS * REQUESTS);
  CHECKF(a >= 4 + (CLIENTS / 2) * REQUESTS && b >= 4 + (CLIENTS / 2) * REQUESTS,
         "connections dealt evenly: %ld and %ld requests", a, b);
  pair_stop(&p);
}

static void test_limit(void) {
  pair_t p;
  pair_start(&p, 2);
  /* One connection on each loop, kept open. */
  int first = client_connect(p.port);
  send_get(first, "/");
  expect_ok_body(first, "leader", "first connection");
  int second = client_connect(p.port);
  send_get(second, "/");
  expect_ok_body(second, "shard", "second connection");
  /* Two open between the loops: a third is closed at once, whichever
   * loop's turn it is. */
  int third = client_connect(p.port);
  const char req[] = "GET / HTTP/1.1\r\nHost: n\r\n\r\n";
  (void)send_all_try(third, req, sizeof(req) - 1);
  CHECK_CLOSED(third, "third connection, over the limit");
  close(third);
  close(first);
  /* Once one is gone, a new one is served. */
  bool served = false;
  for (int i = 0; i < 100 && !served; i++) {
    sleep_ms(20);
    int fd = client_connect(p.port);
    send_get(fd, "/");
    uint8_t c;
    served = recv(fd, &c, 1, 0) == 1;
    close(fd);
  }
  CHECK(served);
  close(second);
  pair_stop(&p);
}

int main(int argc, char **argv) {
  /* A client may close while its answer is being written (as in the
   * runtimes, which ignore it too). */
  signal(SIGPIPE, SIG_IGN);
  test_deadline(60);
  const char *mode = argc > 1 ? argv[1] : "deal";
  if (strcmp(mode, "deal") == 0)
    test_deal();
  else if (strcmp(mode, "limit") == 0)
    test_limit();
  else
    CHECKF(false, "unknown mode %s", mode);
  puts("ok");
  return 0;
}
