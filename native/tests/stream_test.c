/* Streamed request bodies: a request whose body did not come whole with its
 * head reaches the worker before its body is complete,
 * the rest follows in body records, and while the worker has not
 * acknowledged more than YMO_BODY_HIGH_WATER the server stops reading the
 * client. A C thread drives the worker as JS does; the main thread is the
 * client. Run under ThreadSanitizer too: acks cross from the worker thread
 * to the loop thread. */
#include <stdatomic.h>

#include "test_util.h"

#define BODY_SIZE (32 * 1024 * 1024)

static ymo_worker_t *w;
static atomic_int acking;            /* 0: hold every byte unread. */
static atomic_llong received;        /* Body bytes seen by the worker. */
static atomic_int done;

typedef struct {
  uint32_t id, gen;
  bool open;
  uint64_t len, sum, unacked;
} upload_t;

static void *worker_main(void *arg) {
  (void)arg;
  takebuf_t tb = {.raw = true};
  upload_t up = {0};
  CHECK_OK(ymo_worker_start(w));
  while (!atomic_load(&done)) {
    int n = ymo_worker_wait(w);
    if (n == YMO_ESHUTDOWN) break;
    int32_t len = take_all(w, &tb);
    for (int32_t off = 0; off < len;) {
      const uint8_t *p = tb.p + off;
      uint32_t rec_len = REC_FIELD(p, record_len);
      uint32_t flags = REC_FIELD(p, flags);
      if (flags & YMO_REQF_BODY) {
        CHECK(up.open && REC_FIELD(p, id) == up.id &&
              REC_FIELD(p, gen) == up.gen);
        size_t data_len =
            rec_len - YMO_REQ_ABORT_SIZE - REC_FIELD(p, body_padding);
        for (size_t i = 0; i < data_len; i++)
          up.sum += p[YMO_REQ_ABORT_SIZE + i];
        up.len += data_len;
        up.unacked += data_len;
        atomic_fetch_add(&received, (long long)data_len);
        if (flags & YMO_REQF_END) {
          char reply[64];
          int k = snprintf(reply, sizeof(reply), "%llu %llu",
                           (unsigned long long)up.len,
                           (unsigned long long)up.sum);
          CHECK_OK(ymo_worker_respond(w, up.id, up.gen, 200, NULL, 0,
                                      (const uint8_t *)reply, k,
                                      YMO_RESP_DONE));
          up.open = false;
        }
      } else {
        rec_t r;
        parse_record(p, (size_t)(len - off), &r);
        CHECKF(r.flags & YMO_REQF_STREAM, "a %zu-byte body came whole",
               r.body_len);
        up = (upload_t){.id = r.id, .gen = r.gen, .open = true};
        for (size_t i = 0; i < r.body_len; i++) up.sum += r.body[i];
        up.len = up.unacked = r.body_len;
        atomic_fetch_add(&received, (long long)r.body_len);
      }
      off += (int32_t)rec_len;
    }
    if (up.open && up.unacked > 0 && atomic_load(&acking)) {
      CHECK_OK(ymo_worker_body_ack(w, up.id, up.gen, (int32_t)up.unacked));
      up.unacked = 0;
    }
    if (!atomic_load(&acking)) sleep_ms(1);
  }
  takebuf_free(&tb);
  return NULL;
}

typedef struct {
  int fd;
  bool chunked;
} client_t;

static void *client_main(void *arg) {
  client_t *c = arg;
  char head[160];
  int n = c->chunked
              ? snprintf(head, sizeof(head),
                         "POST /up HTTP/1.1\r\nHost: x\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n")
              : snprintf(head, sizeof(head),
                         "POST /up HTTP/1.1\r\nHost: x\r\n"
                         "Content-Length: %d\r\n\r\n",
                         BODY_SIZE);
  send_all(c->fd, head, (size_t)n);
  static uint8_t block[65536];
  for (size_t sent = 0; sent < BODY_SIZE; sent += sizeof(block)) {
    for (size_t i = 0; i < sizeof(block); i++)
      block[i] = (uint8_t)((sent + i) * 7);
    if (c->chunked) {
      char size[16];
      int k = snprintf(size, sizeof(size), "%zx\r\n", sizeof(block));
      send_all(c->fd, size, (size_t)k);
    }
    send_all(c->fd, block, sizeof(block));
    if (c->chunked) send_all(c->fd, "\r\n", 2);
  }
  if (c->chunked) send_all(c->fd, "0\r\n\r\n", 5);
  return NULL;
}

static void upload(int port, bool chunked) {
  atomic_store(&acking, 0);
  atomic_store(&received, 0);
  client_t c = {client_connect(port), chunked};
  pthread_t client;
  CHECK(pthread_create(&client, NULL, client_main, &c) == 0);
  /* Wait until the worker has what the server read, and nothing more
   * arrives: the server has stopped reading. */
  long long last = -1;
  for (int i = 0; i < 200; i++) {
    long long now = atomic_load(&received);
    if (now == last && now > 0) break;
    last = now;
    sleep_ms(50);
  }
  long long held = atomic_load(&received);
  /* High water, plus what one read can bring past it, plus chunk framing. */
  CHECKF(held <= YMO_BODY_HIGH_WATER + 2 * 65536,
         "the server read %lld body bytes nobody acknowledged", held);
  atomic_store(&acking, 1);
  ymo_worker_notify(w); /* Wake the worker to ack what it holds. */
  CHECK(pthread_join(client, NULL) == 0);
  uint64_t sum = 0;
  for (size_t i = 0; i < BODY_SIZE; i++) sum += (uint8_t)(i * 7);
  char want[64];
  snprintf(want, sizeof(want), "%d %llu", BODY_SIZE, (unsigned long long)sum);
  expect_t e = {0};
  expect_head(&e, 200, (long long)strlen(want), false, false, false, "");
  db_puts(&e.b, want);
  EXPECT_RESPONSE(c.fd, &e, chunked ? "chunked upload" : "upload");
  db_free(&e.b);
  close(c.fd);
}

int main(void) {
  int port;
  ymo_server_t *srv = test_server(1, &port);
  CHECK_OK(ymo_server_set_option(srv, YMO_OPT_MAX_BODY_SIZE, 1 << 30));
  w = ymo_server_worker(srv, 0);
  CHECK_OK(ymo_server_start(srv));
  pthread_t worker;
  CHECK(pthread_create(&worker, NULL, worker_main, NULL) == 0);
  upload(port, false);
  upload(port, true);
  atomic_store(&done, 1);
  CHECK_OK(ymo_server_stop(srv));
  CHECK(pthread_join(worker, NULL) == 0);
  ymo_server_free(srv);
  printf("stream_test: ok\n");
  return 0;
}
