/* WebSocket sessions end to end: a C thread drives the worker as JS does
 * (accepting handshakes, echoing messages, giving handles back after the
 * abort record), while client threads each open a socket, send a frame in
 * the same write as the handshake, exchange messages of every length form,
 * ping, and close; one client vanishes without a close, one breaks the
 * protocol and is closed with 1002. Run under
 * ThreadSanitizer too: the handshake's state crosses from the worker thread
 * to L, and frames from both threads share each connection's output list. */
#include <stdatomic.h>

#include "test_util.h"

#define CLIENTS 6
#define MESSAGES 60

static ymo_worker_t *w;
static atomic_int done;
static atomic_int accepted, aborted_seen, closes_seen;

static void *worker_main(void *arg) {
  (void)arg;
  takebuf_t tb = {.raw = true};
  CHECK_OK(ymo_worker_start(w));
  while (!atomic_load(&done)) {
    int n = ymo_worker_wait(w);
    if (n == YMO_ESHUTDOWN) break;
    int32_t len = take_all(w, &tb);
    for (int32_t off = 0; off < len;) {
      const uint8_t *p = tb.p + off;
      uint32_t rec_len = REC_FIELD(p, record_len);
      uint32_t flags = REC_FIELD(p, flags);
      uint32_t id = REC_FIELD(p, id), gen = REC_FIELD(p, gen);
      if ((flags & YMO_REQF_BODY) && (flags & YMO_REQF_UPGRADE)) {
        int opcode = (int)REC_FIELD(p, http_minor);
        size_t data_len =
            rec_len - YMO_REQ_ABORT_SIZE - REC_FIELD(p, body_padding);
        const uint8_t *data = p + YMO_REQ_ABORT_SIZE;
        if (data_len > 0)
          CHECK_OK(ymo_worker_body_ack(w, id, gen, (int32_t)data_len));
        if (opcode == 1 || opcode == 2) {
          int32_t rc =
              ymo_worker_ws_send(w, id, gen, opcode, data, (int32_t)data_len, 0);
          CHECKF(rc >= 0 || rc == YMO_EPIPE, "ws_send: %d", rc);
        } else if (opcode == 8) {
          atomic_fetch_add(&closes_seen, 1);
        }
      } else if (flags & YMO_REQF_ABORT) {
        atomic_fetch_add(&aborted_seen, 1);
        int rc = ymo_worker_release(w, id, gen);
        CHECKF(rc == 0 || rc == YMO_ESTALE, "release: %d", rc);
      } else if (!(flags & YMO_REQF_BODY)) {
        CHECKF(flags & YMO_REQF_UPGRADE, "flags %#x", flags);
        static const char proto[] = "Sec-WebSocket-Protocol: echo\r\n";
        CHECK_OK(ymo_worker_ws_accept(w, id, gen, (const uint8_t *)proto,
                                      (int32_t)sizeof(proto) - 1, 0));
        atomic_fetch_add(&accepted, 1);
      }
      off += (int32_t)rec_len;
    }
  }
  takebuf_free(&tb);
  return NULL;
}

/* A masked client frame of len payload bytes into out; returns its size. */
static size_t client_frame(uint8_t *out, int opcode, bool fin,
                           const uint8_t *payload, size_t len) {
  static const uint8_t mask[4] = {0xa1, 0x5e, 0x07, 0xc3};
  size_t n = 0;
  out[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
  if (len < 126) {
    out[n++] = (uint8_t)(0x80 | len);
  } else if (len < 65536) {
    out[n++] = 0x80 | 126;
    out[n++] = (uint8_t)(len >> 8);
    out[n++] = (uint8_t)len;
  } else {
    out[n++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
  }
  memcpy(out + n, mask, 4);
  n += 4;
  for (size_t i = 0; i < len; i++) out[n + i] = payload[i] ^ mask[i & 3];
  return n + len;
}

/* Reads one server frame: its opcode, payload into buf (cap bytes). */
static size_t read_frame(int fd, int *opcode, uint8_t *buf, size_t cap) {
  uint8_t h[2];
  CHECK(recv_n(fd, h, 2) == 2);
  CHECKF((h[1] & 0x80) == 0, "a server frame is masked");
  CHECKF(h[0] & 0x80, "unexpected fragment");
  *opcode = h[0] & 15;
  uint64_t len = h[1] & 127;
  if (len == 126) {
    uint8_t e[2];
    CHECK(recv_n(fd, e, 2) == 2);
    len = (uint64_t)e[0] << 8 | e[1];
  } else if (len == 127) {
    uint8_t e[8];
    CHECK(recv_n(fd, e, 8) == 8);
    len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | e[i];
  }
  CHECKF(len <= cap, "frame of %llu bytes", (unsigned long long)len);
  CHECK(recv_n(fd, buf, (size_t)len) == len);
  return (size_t)len;
}

static int port;

static const char HANDSHAKE[] =
    "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

/* Opens a socket with an early "hi" frame; returns the fd past the 101. */
static int open_socket(void) {
  int fd = client_connect(port);
  uint8_t req[512];
  size_t n = strlen(HANDSHAKE);
  memcpy(req, HANDSHAKE, n);
  n += client_frame(req + n, 1, true, (const uint8_t *)"hi", 2);
  send_all(fd, req, n);
  char head[512];
  size_t got = 0;
  while (got < 4 || memcmp(head + got - 4, "\r\n\r\n", 4) != 0) {
    CHECK(got < sizeof(head) - 1);
    CHECK(recv_n(fd, (uint8_t *)head + got, 1) == 1);
    got++;
  }
  head[got] = '\0';
  CHECKF(strncmp(head, "HTTP/1.1 101 ", 13) == 0, "head: %s", head);
  CHECKF(strstr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
         "head: %s", head);
  CHECKF(strstr(head, "Sec-WebSocket-Protocol: echo\r\n"), "head: %s", head);
  int opcode;
  uint8_t buf[8];
  size_t len = read_frame(fd, &opcode, buf, sizeof(buf));
  CHECK(opcode == 1 && len == 2 && memcmp(buf, "hi", 2) == 0);
  return fd;
}

static void *client_main(void *arg) {
  intptr_t k = (intptr_t)arg;
  int fd = open_socket();
  static const size_t sizes[] = {0, 1, 125, 126, 1000, 65535, 65536, 200000};
  size_t cap = 200000 + 16;
  uint8_t *msg = malloc(cap), *frame = malloc(cap), *back = malloc(cap);
  CHECK(msg != NULL && frame != NULL && back != NULL);
  for (int m = 0; m < MESSAGES; m++) {
    size_t len = sizes[(size_t)(m + k) % (sizeof(sizes) / sizeof(*sizes))];
    for (size_t i = 0; i < len; i++) msg[i] = (uint8_t)(i * 31 + m + k);
    if (m % 7 == 3) { /* A ping first: its pong comes before the echo. */
      size_t n = client_frame(frame, 9, true, (const uint8_t *)"p", 1);
      send_all(fd, frame, n);
      int opcode;
      size_t got = read_frame(fd, &opcode, back, cap);
      CHECK(opcode == 10 && got == 1 && back[0] == 'p');
    }
    size_t n = client_frame(frame, 2, true, msg, len);
    send_all(fd, frame, n);
    int opcode;
    size_t got = read_frame(fd, &opcode, back, cap);
    CHECKF(opcode == 2 && got == len && memcmp(back, msg, len) == 0,
           "client %ld message %d: %zu bytes back for %zu", (long)k, m, got,
           len);
  }
  if (k == 0) {
    close_rst(fd); /* Vanishes: the worker gets an abort, no close. */
  } else if (k == 1) {
    /* Breaks the protocol (an unmasked frame): the server closes with
     * 1002 and the worker hears the close, with that code. */
    uint8_t bad[] = {0x81, 0x02, 'n', 'o'};
    send_all(fd, bad, sizeof(bad));
    int opcode;
    size_t got = read_frame(fd, &opcode, back, cap);
    CHECK(opcode == 8 && got == 2 && back[0] == 0x03 && back[1] == 0xea);
    CHECK_CLOSED(fd, "after a protocol error");
    close(fd);
  } else {
    uint8_t payload[] = {0x03, 0xe8, 'o', 'k'};
    size_t n = client_frame(frame, 8, true, payload, sizeof(payload));
    send_all(fd, frame, n);
    int opcode;
    size_t got = read_frame(fd, &opcode, back, cap);
    CHECK(opcode == 8 && got >= 2 && back[0] == 0x03 && back[1] == 0xe8);
    CHECK_CLOSED(fd, "after the closing handshake");
    close(fd);
  }
  free(msg);
  free(frame);
  free(back);
  return NULL;
}

int main(void) {
  test_deadline(60);
  ymo_server_t *srv = test_server(1, &port);
  w = ymo_server_worker(srv, 0);
  CHECK_OK(ymo_server_start(srv));
  pthread_t worker;
  CHECK(pthread_create(&worker, NULL, worker_main, NULL) == 0);
  pthread_t clients[CLIENTS];
  for (intptr_t k = 0; k < CLIENTS; k++)
    CHECK(pthread_create(&clients[k], NULL, client_main, (void *)k) == 0);
  for (int k = 0; k < CLIENTS; k++) CHECK(pthread_join(clients[k], NULL) == 0);
  /* Every socket ends with an abort record; the closed ones said close. */
  for (int i = 0; i < 200 && atomic_load(&aborted_seen) < CLIENTS; i++)
    sleep_ms(10);
  CHECK_EQ(atomic_load(&accepted), CLIENTS);
  CHECK_EQ(atomic_load(&aborted_seen), CLIENTS);
  CHECK_EQ(atomic_load(&closes_seen), CLIENTS - 1);
  CHECK_EQ(ymo_server_connections(srv), 0);
  atomic_store(&done, 1);
  CHECK_OK(ymo_server_stop(srv));
  CHECK(pthread_join(worker, NULL) == 0);
  ymo_server_free(srv);
  printf("ws_session_test: ok\n");
  return 0;
}
