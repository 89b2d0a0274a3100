/* Layer 5, the JS thread's half of WebSocket (websocket.h): accepting an
 * opening handshake, and framing what JS sends. Like ymo_worker_respond(),
 * each call builds its bytes here, off L, and queues one output piece. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "websocket.h"

static void link_free(ymo_attachment_t *self) {
  ymo_ws_link_t *link = (ymo_ws_link_t *)self;
  if (link->deflater != NULL) ymo__ws_deflater_free(link->deflater);
  free(link);
}

/* permessage-deflate, if the client offers an acceptable one: the
 * Sec-WebSocket-Extensions fields in order until one is accepted. */
static void negotiate(const ymo_exchange_t *ex, ymo_ws_deflate_params_t *p,
                      char resp[YMO_WS_EXTENSIONS_MAX]) {
  p->enabled = false;
  resp[0] = '\0';
  for (size_t at = ymo__record_field_next(ex, 0); at != 0;
       at = ymo__record_field_next(ex, at)) {
    const char *name, *value;
    uint32_t name_len, value_len;
    ymo__record_field_get(ex, at, &name, &name_len, &value, &value_len);
    if (ymo__field_name_is(name, name_len, "sec-websocket-extensions") &&
        ymo__ws_negotiate_deflate(value, value_len, 0, p, resp))
      return;
  }
}

int ymo_worker_ws_accept(ymo_worker_t *w, uint32_t id, uint32_t gen,
                         const uint8_t *headers, int32_t headers_len,
                         int flags) {
  ymo_exchange_t *ex = ymo__worker_held(w, id, gen);
  if (ex == NULL) return YMO_ESTALE;
  if (ex->resp_state != 0 || !(ex->req_flags & YMO_REQF_UPGRADE) ||
      headers_len < 0 || (headers_len > 0 && headers == NULL))
    return YMO_EINVAL;
  if (atomic_load_explicit(&ex->aborted, memory_order_acquire)) {
    ymo__worker_finish_slot(w, ex);
    ymo__exchange_unref(ex);
    return YMO_EPIPE;
  }
  const char *key;
  uint32_t key_len;
  char accept[YMO_WS_ACCEPT_LEN + 1];
  /* L checked the key when it flagged the request. */
  if (!ymo__record_field_find(ex, "sec-websocket-key", &key, &key_len) ||
      ymo__ws_accept(key, key_len, accept) != 0)
    return YMO_EINVAL;

  ymo_ws_link_t *link = calloc(1, sizeof(*link));
  if (link == NULL) return YMO_ENOMEM;
  link->base.free = link_free;
  char extensions[YMO_WS_EXTENSIONS_MAX] = "";
  if (flags & YMO_WS_DEFLATE) negotiate(ex, &link->deflate, extensions);
  if (link->deflate.enabled) {
    link->deflater = ymo__ws_deflater_new(&link->deflate);
    if (link->deflater == NULL) {
      free(link);
      return YMO_ENOMEM;
    }
  }

  char head[256 + YMO_WS_EXTENSIONS_MAX];
  int head_len = snprintf(head, sizeof(head),
                          "HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: %s\r\n"
                          "%s%s%s",
                          accept,
                          extensions[0] ? "Sec-WebSocket-Extensions: " : "",
                          extensions, extensions[0] ? "\r\n" : "");
  size_t len = (size_t)head_len + (size_t)headers_len + 2;
  ymo_out_t *out = ymo__out_new(ex, len, YMO__OUT_UPGRADE);
  if (out == NULL) {
    link_free(&link->base);
    return YMO_ENOMEM;
  }
  memcpy(out->data, head, (size_t)head_len);
  if (headers_len > 0)
    memcpy(out->data + head_len, headers, (size_t)headers_len);
  memcpy(out->data + head_len + headers_len, "\r\n", 2);
  ex->attachment = &link->base;
  ex->resp_state = 3; /* A socket: the slot stays until released. */
  ymo__exchange_ref(ex);
  ymo__worker_push_out(w, out);
  return 0;
}

/* The accepted socket of (id, gen), or an error: what send and close share. */
static int held_socket(ymo_worker_t *w, uint32_t id, uint32_t gen,
                       ymo_exchange_t **ex_out) {
  ymo_exchange_t *ex = ymo__worker_held(w, id, gen);
  if (ex == NULL) return YMO_ESTALE;
  ymo_ws_link_t *link = ymo__ws_link(ex);
  if (ex->resp_state != 3 || link == NULL) return YMO_EINVAL;
  if (link->close_sent ||
      atomic_load_explicit(&ex->aborted, memory_order_acquire))
    return YMO_EPIPE;
  *ex_out = ex;
  return 0;
}

int32_t ymo_worker_ws_send(ymo_worker_t *w, uint32_t id, uint32_t gen,
                           int opcode, const uint8_t *data, int32_t len,
                           int flags) {
  ymo_exchange_t *ex;
  int err = held_socket(w, id, gen, &ex);
  if (err != 0) return err;
  bool control = opcode == YMO_WS_OP_PING || opcode == YMO_WS_OP_PONG;
  if ((!control && opcode != YMO_WS_OP_TEXT && opcode != YMO_WS_OP_BINARY) ||
      len < 0 || (len > 0 && data == NULL) ||
      (control && len > YMO_WS_CONTROL_MAX))
    return YMO_EINVAL;
  const uint8_t *payload = data;
  size_t payload_len = (size_t)len;
  ymo_ws_link_t *link = ymo__ws_link(ex);
  bool compressed = !control && (flags & YMO_WS_COMPRESS) &&
                    link->deflater != NULL;
  if (compressed &&
      ymo__ws_deflate(link->deflater, data, (size_t)len, true, &payload,
                      &payload_len) != 0)
    return YMO_ENOMEM;
  uint8_t header[YMO_WS_HEADER_MAX];
  size_t header_len =
      ymo__ws_frame_header(header, opcode, true, compressed, payload_len);
  ymo_out_t *out = ymo__out_new(ex, header_len + payload_len, 0);
  if (out == NULL) return YMO_ENOMEM;
  memcpy(out->data, header, header_len);
  if (payload_len > 0) memcpy(out->data + header_len, payload, payload_len);
  if (compressed) ymo__ws_deflater_trim(link->deflater);
  ymo__exchange_ref(ex);
  long long pending =
      atomic_load_explicit(&ex->unwritten, memory_order_relaxed) +
      (long long)out->len;
  /* As for a streamed response: past the high-water mark the caller may
   * wait for a drain record (Bun's drain), asked for before L sees this. */
  if (pending > YMO_WS_HIGH_WATER)
    atomic_store_explicit(&ex->want_drain, 1, memory_order_relaxed);
  ymo__worker_push_out(w, out);
  return pending > INT32_MAX ? INT32_MAX : (int32_t)pending;
}

int ymo_worker_ws_close(ymo_worker_t *w, uint32_t id, uint32_t gen, int code,
                        const uint8_t *reason, int32_t reason_len) {
  ymo_exchange_t *ex;
  int err = held_socket(w, id, gen, &ex);
  if (err != 0) return err;
  if (reason_len < 0 || (reason_len > 0 && reason == NULL))
    return YMO_EINVAL;
  uint8_t frame[YMO_WS_CONTROL_FRAME_MAX];
  int n = ymo__ws_close_frame(frame, code, (const char *)reason,
                              (size_t)reason_len);
  if (n < 0) return n;
  ymo_out_t *out = ymo__out_new(ex, (size_t)n, YMO__OUT_WS_CLOSE);
  if (out == NULL) return YMO_ENOMEM;
  memcpy(out->data, frame, (size_t)n);
  ymo__ws_link(ex)->close_sent = true;
  ymo__exchange_ref(ex);
  ymo__worker_push_out(w, out);
  return 0;
}

int ymo_worker_ws_subscribe(ymo_worker_t *w, uint32_t id, uint32_t gen,
                            const uint8_t *topic, int32_t topic_len,
                            int subscribe) {
  ymo_exchange_t *ex;
  int err = held_socket(w, id, gen, &ex);
  if (err != 0) return err;
  if (topic_len <= 0 || topic_len > 65535 || topic == NULL)
    return YMO_EINVAL;
  ymo_out_t *out =
      ymo__out_new(ex, (size_t)topic_len,
                   subscribe ? YMO__OUT_WS_SUBSCRIBE : YMO__OUT_WS_UNSUBSCRIBE);
  if (out == NULL) return YMO_ENOMEM;
  memcpy(out->data, topic, (size_t)topic_len);
  ymo__exchange_ref(ex);
  ymo__worker_push_out(w, out);
  return 0;
}

int32_t ymo__ws_publish(ymo_worker_t *w, ymo_exchange_t *sender,
                        const uint8_t *topic, int32_t topic_len, int opcode,
                        const uint8_t *data, int32_t len, int flags) {
  if (topic_len <= 0 || topic_len > 65535 || topic == NULL || len < 0 ||
      (len > 0 && data == NULL) ||
      (opcode != YMO_WS_OP_TEXT && opcode != YMO_WS_OP_BINARY))
    return YMO_EINVAL;
  uint8_t header[YMO_WS_HEADER_MAX];
  size_t header_len =
      ymo__ws_frame_header(header, opcode, true, false, (uint64_t)len);
  size_t total = YMO__PUBLISH_HEAD + (size_t)topic_len + header_len +
                 (size_t)len;
  ymo_out_t *out = ymo__out_new(sender, total, YMO__OUT_WS_PUBLISH);
  if (out == NULL) return YMO_ENOMEM;
  uint8_t *p = out->data;
  *p++ = (flags & YMO_WS_PUBLISH_SELF) ? YMO__PUBLISH_SELF : 0;
  *p++ = (uint8_t)topic_len;
  *p++ = (uint8_t)(topic_len >> 8);
  memcpy(p, topic, (size_t)topic_len);
  p += topic_len;
  memcpy(p, header, header_len);
  p += header_len;
  if (len > 0) memcpy(p, data, (size_t)len);
  if (sender != NULL) ymo__exchange_ref(sender);
  ymo__worker_push_out(w, out);
  return len;
}

int32_t ymo_worker_ws_publish(ymo_worker_t *w, uint32_t id, uint32_t gen,
                              const uint8_t *topic, int32_t topic_len,
                              int opcode, const uint8_t *data, int32_t len,
                              int flags) {
  ymo_exchange_t *ex;
  int err = held_socket(w, id, gen, &ex);
  if (err != 0) return err;
  return ymo__ws_publish(w, ex, topic, topic_len, opcode, data, len, flags);
}

int32_t ymo_worker_publish(ymo_worker_t *w, const uint8_t *topic,
                           int32_t topic_len, int opcode, const uint8_t *data,
                           int32_t len) {
  if (w == NULL) return YMO_EINVAL;
  /* Once shutting down, L may have let go of the queues' watchers. */
  if (atomic_load_explicit(w->draining, memory_order_relaxed))
    return YMO_ESHUTDOWN;
  return ymo__ws_publish(w, NULL, topic, topic_len, opcode, data, len, 0);
}
