/* ymo_worker_respond_canned(): a handler's exchange answered with ymo's
 * standard plain-text page, byte for byte the page the loop thread sends for
 * its own errors, keeping the connection open unless YMO_RESP_CLOSE is
 * given; HEAD gets the head alone, and a finished handle is stale. The main
 * thread is the worker's JS thread. */
#include "test_util.h"

static ymo_worker_t *w;

static rec_t take_one(takebuf_t *tb) { return take_request(w, tb); }

int main(void) {
  test_deadline(30);
  signal(SIGPIPE, SIG_IGN);
  int port;
  ymo_server_t *srv = test_server(1, &port);
  w = ymo_server_worker(srv, 0);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_server_start(srv));
  takebuf_t tb = {0};
  static const char type[] = "Content-Type: text/plain;charset=UTF-8\r\n";

  int fd = client_connect(port);
  static const char get[] = "GET /a HTTP/1.1\r\nHost: c\r\n\r\n";
  static const char head[] = "HEAD /b HTTP/1.1\r\nHost: c\r\n\r\n";

  /* Kept open without YMO_RESP_CLOSE. */
  send_all(fd, get, sizeof(get) - 1);
  rec_t r = take_one(&tb);
  CHECK_OK(ymo_worker_respond_canned(w, r.id, r.gen, 404, 0));
  expect_t e = {0};
  expect_head(&e, 404, (long long)strlen("Not Found"), false, false, false,
              type);
  db_puts(&e.b, "Not Found");
  EXPECT_RESPONSE(fd, &e, "404 page, kept open");
  db_clear(&e.b);
  /* The handle is finished. */
  CHECK_EQ(ymo_worker_respond_canned(w, r.id, r.gen, 404, 0), YMO_ESTALE);

  /* HEAD: the same head, no body. */
  send_all(fd, head, sizeof(head) - 1);
  r = take_one(&tb);
  CHECK_OK(ymo_worker_respond_canned(w, r.id, r.gen, 500, 0));
  expect_head(&e, 500, (long long)strlen("Internal Server Error"), false,
              false, false, type);
  EXPECT_RESPONSE(fd, &e, "500 page to HEAD");
  db_clear(&e.b);

  /* Bad arguments as for respond. */
  send_all(fd, get, sizeof(get) - 1);
  r = take_one(&tb);
  CHECK_EQ(ymo_worker_respond_canned(w, r.id, r.gen, 99, 0), YMO_EINVAL);

  /* With YMO_RESP_CLOSE: the very page L sends for its own errors. */
  CHECK_OK(ymo_worker_respond_canned(w, r.id, r.gen, 503, YMO_RESP_CLOSE));
  expect_local_error(&e, 503);
  EXPECT_RESPONSE(fd, &e, "503 page, closing");
  CHECK_CLOSED(fd, "after the closing page");
  db_free(&e.b);
  close(fd);

  CHECK_OK(ymo_worker_join(w));
  CHECK_OK(ymo_server_stop(srv));
  ymo_server_free(srv);
  takebuf_free(&tb);
  puts("canned_test: ok");
  return 0;
}
