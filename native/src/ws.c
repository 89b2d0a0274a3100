/* Layer 5, beside HTTP/1.1: WebSocket frames (see ws.h). The parser reads
 * a client's frames one byte-exact step at a time, so any split of the
 * input gives the same events; the writer builds the server's frames; the
 * deflater compresses outgoing messages. RFC 6455 section 5 and RFC 7692
 * section 7 are the references for every rule below. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ws.h"

/* A message buffer larger than this is given back when its message has been
 * delivered, so a connection keeps at most this much between messages. */
#define KEEP_BUF (64 * 1024)
/* The first allocation of a message buffer. */
#define FIRST_BUF 256
/* Compressed payload is unmasked into a stack buffer of this size on its
 * way to zlib. */
#define CHUNK 4096
/* The LZ77 window the decompressor is made with: the largest, so whatever
 * client_max_window_bits the client uses can be inflated. */
#define INFLATE_BITS 15
/* zlib level 1, as for HTTP responses (compress.c): this runs per message. */
#define DEFLATE_LEVEL 1

/* What a sender strips from a compressed message and the receiver appends
 * (RFC 7692 section 7.2.2): the end of an empty stored block. */
static const uint8_t deflate_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* What an event's data points at when it has none. */
static const uint8_t empty[1] = {0};

/* ------------------------------------------------------------------------ */
/* UTF-8 and close codes.                                                   */

size_t ymo__ws_utf8_feed(ymo_ws_utf8_t *u, const uint8_t *p, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint8_t c = p[i];
    if (u->need > 0) {
      if (c < u->lo || c > u->hi) return i;
      u->need--;
      u->lo = 0x80;
      u->hi = 0xbf;
      i++;
      continue;
    }
    if (c < 0x80) {
      /* Skip ASCII eight bytes at a time. */
      i++;
      while (len - i >= 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull) break;
        i += 8;
      }
      continue;
    }
    /* A lead byte: how many continuation bytes follow, and the range of the
     * first of them, which rules out overlong forms (E0, F0), surrogates
     * (ED) and code points past U+10FFFF (F4) at once (RFC 3629 section 4). */
    u->lo = 0x80;
    u->hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      u->need = 1;
    } else if (c == 0xe0) {
      u->need = 2;
      u->lo = 0xa0;
    } else if (c == 0xed) {
      u->need = 2;
      u->hi = 0x9f;
    } else if (c >= 0xe1 && c <= 0xef) {
      u->need = 2;
    } else if (c == 0xf0) {
      u->need = 3;
      u->lo = 0x90;
    } else if (c >= 0xf1 && c <= 0xf3) {
      u->need = 3;
    } else if (c == 0xf4) {
      u->need = 3;
      u->hi = 0x8f;
    } else {
      return i; /* 80..C1 (a stray continuation, overlong), F5..FF. */
    }
    i++;
  }
  return len;
}

bool ymo__ws_utf8_valid(const uint8_t *p, size_t len) {
  ymo_ws_utf8_t u;
  ymo__ws_utf8_init(&u);
  return ymo__ws_utf8_feed(&u, p, len) == len && ymo__ws_utf8_complete(&u);
}

bool ymo__ws_close_code_valid(int code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

/* ------------------------------------------------------------------------ */
/* The parser.                                                              */

void ymo__ws_parser_init(ymo_ws_parser_t *p, size_t max_message,
                         const ymo_ws_deflate_params_t *deflate) {
  memset(p, 0, sizeof(*p));
  p->max_message = max_message;
  if (deflate != NULL && deflate->enabled) p->deflate = *deflate;
  p->state = YMO__WS_HEADER;
  p->hdr_need = 2;
  ymo__ws_utf8_init(&p->utf8);
}

static void inflater_free(ymo_ws_parser_t *p) {
  if (p->z != NULL) {
    inflateEnd(p->z);
    free(p->z);
    p->z = NULL;
  }
}

void ymo__ws_parser_trim(ymo_ws_parser_t *p) {
  if (p->in_message) return;
  free(p->buf);
  p->buf = NULL;
  p->len = p->cap = 0;
  /* Reset after every message anyway: nothing in it is worth keeping. */
  if (p->deflate.client_no_context_takeover) inflater_free(p);
}

void ymo__ws_parser_free(ymo_ws_parser_t *p) {
  free(p->buf);
  p->buf = NULL;
  p->len = p->cap = 0;
  inflater_free(p);
}

static int set_event(ymo_ws_event_t *ev, int type, int code,
                     const uint8_t *data, size_t len) {
  ev->type = type;
  ev->code = code;
  ev->data = data != NULL ? data : empty;
  ev->len = len;
  return type;
}

static int fail(ymo_ws_parser_t *p, int code, ymo_ws_event_t *ev) {
  p->state = YMO__WS_FAILED;
  p->error = code;
  return set_event(ev, YMO_WS_EV_ERROR, code, NULL, 0);
}

/* Grows the message buffer to hold at least need bytes, doubling, but never
 * past one byte more than the limit (the byte that shows it was passed). */
static bool reserve(ymo_ws_parser_t *p, size_t need) {
  if (need <= p->cap) return true;
  size_t cap = p->cap ? p->cap : FIRST_BUF;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (p->max_message < SIZE_MAX && cap > p->max_message + 1)
    cap = need > p->max_message + 1 ? need : p->max_message + 1;
  uint8_t *buf = realloc(p->buf, cap);
  if (buf == NULL) return false;
  p->buf = buf;
  p->cap = cap;
  return true;
}

/* Copies n payload bytes to dst, unmasking them; the mask's phase is the
 * payload offset of the first byte. */
static void unmask(uint8_t *dst, const uint8_t *src, size_t n,
                   const uint8_t mask[4], uint64_t offset) {
  uint8_t key[8];
  for (int k = 0; k < 8; k++) key[k] = mask[(offset + (uint64_t)k) & 3];
  uint64_t word_key;
  memcpy(&word_key, key, 8);
  size_t i = 0;
  for (; n - i >= 8; i += 8) {
    uint64_t w;
    memcpy(&w, src + i, 8);
    w ^= word_key;
    memcpy(dst + i, &w, 8);
  }
  for (; i < n; i++) dst[i] = src[i] ^ key[i & 7];
}

/* Reads one header byte. Returns 0, or the close code of the rule it
 * breaks, checked as soon as the byte that decides it arrives. */
static int header_byte(ymo_ws_parser_t *p, uint8_t b) {
  p->hdr[p->hdr_len++] = b;
  if (p->hdr_len == 1) {
    bool fin = (b & 0x80) != 0, rsv1 = (b & 0x40) != 0;
    int op = b & 0x0f;
    if (b & 0x30) return YMO_WS_CLOSE_PROTOCOL; /* RSV2, RSV3: no meaning. */
    switch (op) {
      case YMO_WS_OP_CONTINUATION:
        /* RSV1 marks a message, so only its first frame carries it. */
        if (!p->in_message || rsv1) return YMO_WS_CLOSE_PROTOCOL;
        break;
      case YMO_WS_OP_TEXT:
      case YMO_WS_OP_BINARY:
        if (p->in_message) return YMO_WS_CLOSE_PROTOCOL;
        if (rsv1 && !p->deflate.enabled) return YMO_WS_CLOSE_PROTOCOL;
        break;
      case YMO_WS_OP_CLOSE:
      case YMO_WS_OP_PING:
      case YMO_WS_OP_PONG:
        if (!fin || rsv1) return YMO_WS_CLOSE_PROTOCOL;
        break;
      default:
        return YMO_WS_CLOSE_PROTOCOL; /* Reserved opcodes. */
    }
    p->fin = fin;
    p->rsv1 = rsv1;
    p->opcode = (uint8_t)op;
    return 0;
  }
  if (p->hdr_len == 2) {
    if (!(b & 0x80)) return YMO_WS_CLOSE_PROTOCOL; /* Client frames mask. */
    int len7 = b & 0x7f;
    if ((p->opcode & 0x8) && len7 > YMO_WS_CONTROL_MAX)
      return YMO_WS_CLOSE_PROTOCOL;
    p->hdr_need = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4);
  }
  /* The payload length is complete: the 7-bit one at byte 2, else after its
   * 2 or 8 extended bytes. Lengths not in their shortest form are accepted,
   * as RFC 6455 section 5.2 only asks senders for the shortest. */
  if (p->hdr_len == p->hdr_need - 4) {
    int len7 = p->hdr[1] & 0x7f;
    uint64_t n = (uint64_t)len7;
    if (len7 >= 126) {
      n = 0;
      for (int k = 2; k < p->hdr_len; k++) n = n << 8 | p->hdr[k];
      if (len7 == 127 && (n >> 63)) return YMO_WS_CLOSE_PROTOCOL;
    }
    if (!(p->opcode & 0x8) && n > p->max_message - p->wire_len)
      return YMO_WS_CLOSE_TOO_BIG;
    p->remaining = n;
  }
  if (p->hdr_len == p->hdr_need) memcpy(p->mask, p->hdr + p->hdr_len - 4, 4);
  return 0;
}

/* Makes the decompressor. Returns 0 or a close code (1011). */
static int inflater_new(ymo_ws_parser_t *p) {
  z_stream *z = calloc(1, sizeof(*z));
  if (z == NULL) return YMO_WS_CLOSE_INTERNAL;
  if (inflateInit2(z, -INFLATE_BITS) != Z_OK) {
    free(z);
    return YMO_WS_CLOSE_INTERNAL;
  }
  p->z = z;
  return 0;
}

/* Inflates n bytes of the current compressed message into the message
 * buffer, validating text as it comes and never producing more than one
 * byte past the limit. tail: the bytes are the 00 00 ff ff the parser
 * appends, which are ignored after a final block. Returns 0 or a close
 * code. Bad compressed data is 1007: the payload is not what the message
 * claims to be. */
static int inflate_some(ymo_ws_parser_t *p, const uint8_t *in, size_t n,
                        bool tail) {
  if (p->z == NULL) {
    int code = inflater_new(p);
    if (code != 0) return code;
  }
  if (p->z_ended) return tail || n == 0 ? 0 : YMO_WS_CLOSE_INVALID_DATA;
  z_stream *z = p->z;
  z->next_in = (Bytef *)in;
  z->avail_in = (uInt)n;
  for (;;) {
    size_t budget = p->max_message - p->len; /* Bytes still allowed. */
    if (p->len == p->cap && !reserve(p, p->len + 1))
      return YMO_WS_CLOSE_INTERNAL;
    size_t room = p->cap - p->len;
    if (budget < SIZE_MAX && room > budget + 1) room = budget + 1;
    if (room > UINT_MAX) room = UINT_MAX;
    z->next_out = p->buf + p->len;
    z->avail_out = (uInt)room;
    int rc = inflate(z, Z_SYNC_FLUSH);
    size_t made = room - z->avail_out;
    /* Text is checked up to the limit first, so the code does not depend
     * on how much zlib made in one call. */
    size_t checked = made > budget ? budget : made;
    if (p->msg_opcode == YMO_WS_OP_TEXT &&
        ymo__ws_utf8_feed(&p->utf8, p->buf + p->len, checked) < checked)
      return YMO_WS_CLOSE_INVALID_DATA;
    if (made > budget) return YMO_WS_CLOSE_TOO_BIG;
    p->len += made;
    switch (rc) {
      case Z_STREAM_END:
        p->z_ended = true;
        return z->avail_in > 0 && !tail ? YMO_WS_CLOSE_INVALID_DATA : 0;
      case Z_BUF_ERROR: /* No progress: the input is used up. */
        return 0;
      case Z_OK:
        if (z->avail_in == 0 && z->avail_out > 0) return 0;
        break;
      case Z_MEM_ERROR:
        return YMO_WS_CLOSE_INTERNAL;
      default: /* Z_DATA_ERROR, Z_NEED_DICT (never for raw deflate). */
        return YMO_WS_CLOSE_INVALID_DATA;
    }
  }
}

/* A compressed message is complete: inflates the tail and readies the
 * decompressor for the next message. Returns 0 or a close code. */
static int inflate_finish(ymo_ws_parser_t *p) {
  /* An empty payload is an empty message; feeding zlib the tail alone
   * would leave it inside a stored block's header. */
  if (p->wire_len == 0) return 0;
  int code = inflate_some(p, deflate_tail, sizeof(deflate_tail), true);
  if (code != 0) return code;
  if (p->z_ended) {
    /* The client ended the DEFLATE stream with a final block. The next
     * message starts a new stream, which with context takeover may still
     * refer to this one's window: carry the window over. */
    uInt n = 0;
    uint8_t *dict = NULL;
    if (!p->deflate.client_no_context_takeover) {
      dict = malloc((size_t)1 << INFLATE_BITS);
      if (dict == NULL) return YMO_WS_CLOSE_INTERNAL;
      if (inflateGetDictionary(p->z, dict, &n) != Z_OK) n = 0;
    }
    int rc = inflateReset(p->z);
    if (rc == Z_OK && n > 0) rc = inflateSetDictionary(p->z, dict, n);
    free(dict);
    p->z_ended = false;
    if (rc != Z_OK) return YMO_WS_CLOSE_INTERNAL;
  } else if (p->deflate.client_no_context_takeover) {
    if (inflateReset(p->z) != Z_OK) return YMO_WS_CLOSE_INTERNAL;
  }
  return 0;
}

/* A frame's payload is complete: returns the event it makes, or NEED_MORE
 * (a fragment that does not end its message), or an ERROR. */
static int frame_end(ymo_ws_parser_t *p, ymo_ws_event_t *ev);

/* A frame's header is complete: starts its payload, or, when the payload is
 * empty, ends the frame at once (frame_end's result). */
static int frame_start(ymo_ws_parser_t *p, ymo_ws_event_t *ev) {
  p->hdr_len = 0;
  p->hdr_need = 2;
  p->offset = 0;
  p->state = YMO__WS_PAYLOAD;
  if (p->opcode & 0x8) {
    p->ctrl_len = 0;
  } else {
    if (p->opcode != YMO_WS_OP_CONTINUATION) {
      p->in_message = true;
      p->msg_opcode = p->opcode;
      p->compressed = p->rsv1;
      p->len = 0;
      p->wire_len = 0;
      ymo__ws_utf8_init(&p->utf8);
    }
    p->wire_len += p->remaining;
  }
  if (p->remaining == 0) return frame_end(p, ev);
  return YMO_WS_EV_NEED_MORE;
}

/* Reads up to n payload bytes (at most remaining); *used says how many.
 * Returns 0 or a close code; on a UTF-8 error *used ends at the bad byte. */
static int payload(ymo_ws_parser_t *p, const uint8_t *in, size_t n,
                   size_t *used) {
  if (n > p->remaining) n = (size_t)p->remaining;
  *used = n;
  if (p->opcode & 0x8) {
    unmask(p->ctrl + p->ctrl_len, in, n, p->mask, p->offset);
    p->ctrl_len += n;
  } else if (!p->compressed) {
    if (!reserve(p, p->len + n)) return YMO_WS_CLOSE_INTERNAL;
    uint8_t *dst = p->buf + p->len;
    unmask(dst, in, n, p->mask, p->offset);
    if (p->msg_opcode == YMO_WS_OP_TEXT) {
      size_t ok = ymo__ws_utf8_feed(&p->utf8, dst, n);
      if (ok < n) {
        *used = ok + 1;
        return YMO_WS_CLOSE_INVALID_DATA;
      }
    }
    p->len += n;
  } else {
    uint8_t tmp[CHUNK];
    for (size_t done = 0; done < n;) {
      size_t k = n - done < CHUNK ? n - done : CHUNK;
      unmask(tmp, in + done, k, p->mask, p->offset + done);
      int code = inflate_some(p, tmp, k, false);
      if (code != 0) {
        *used = done + k;
        return code;
      }
      done += k;
    }
  }
  p->offset += n;
  p->remaining -= n;
  return 0;
}

static int frame_end(ymo_ws_parser_t *p, ymo_ws_event_t *ev) {
  p->state = YMO__WS_HEADER;
  switch (p->opcode) {
    case YMO_WS_OP_PING:
      return set_event(ev, YMO_WS_EV_PING, 0, p->ctrl, p->ctrl_len);
    case YMO_WS_OP_PONG:
      return set_event(ev, YMO_WS_EV_PONG, 0, p->ctrl, p->ctrl_len);
    case YMO_WS_OP_CLOSE: {
      /* RFC 6455 section 5.5.1: empty, or a code and a UTF-8 reason. */
      int code = YMO_WS_CLOSE_NO_STATUS;
      if (p->ctrl_len == 1) return fail(p, YMO_WS_CLOSE_PROTOCOL, ev);
      if (p->ctrl_len >= 2) {
        code = p->ctrl[0] << 8 | p->ctrl[1];
        if (!ymo__ws_close_code_valid(code))
          return fail(p, YMO_WS_CLOSE_PROTOCOL, ev);
        if (!ymo__ws_utf8_valid(p->ctrl + 2, p->ctrl_len - 2))
          return fail(p, YMO_WS_CLOSE_INVALID_DATA, ev);
      }
      p->state = YMO__WS_CLOSED;
      return set_event(ev, YMO_WS_EV_CLOSE, code,
                       p->ctrl_len >= 2 ? p->ctrl + 2 : NULL,
                       p->ctrl_len >= 2 ? p->ctrl_len - 2 : 0);
    }
    default:
      break;
  }
  if (!p->fin) return YMO_WS_EV_NEED_MORE;
  if (p->compressed) {
    int code = inflate_finish(p);
    if (code != 0) return fail(p, code, ev);
  }
  if (p->msg_opcode == YMO_WS_OP_TEXT && !ymo__ws_utf8_complete(&p->utf8))
    return fail(p, YMO_WS_CLOSE_INVALID_DATA, ev);
  p->in_message = false;
  p->delivered = true;
  p->wire_len = 0;
  return set_event(ev,
                   p->msg_opcode == YMO_WS_OP_TEXT ? YMO_WS_EV_TEXT
                                                   : YMO_WS_EV_BINARY,
                   0, p->buf, p->len);
}

int ymo__ws_parse(ymo_ws_parser_t *p, const uint8_t *data, size_t len,
                  size_t *consumed, ymo_ws_event_t *ev) {
  *consumed = 0;
  if (p->state == YMO__WS_FAILED) return fail(p, p->error, ev);
  if (p->state == YMO__WS_CLOSED) {
    *consumed = len;
    return set_event(ev, YMO_WS_EV_NEED_MORE, 0, NULL, 0);
  }
  if (p->delivered) {
    /* The message the last call returned is no longer the caller's. */
    p->delivered = false;
    p->len = 0;
    if (p->cap > KEEP_BUF) ymo__ws_parser_trim(p);
  }
  size_t i = 0;
  while (i < len) {
    if (p->state == YMO__WS_HEADER) {
      int code = header_byte(p, data[i++]);
      if (code != 0) {
        *consumed = i;
        return fail(p, code, ev);
      }
      if (p->hdr_len < p->hdr_need) continue;
      int type = frame_start(p, ev);
      if (type != YMO_WS_EV_NEED_MORE) {
        *consumed = i;
        return type;
      }
      continue;
    }
    size_t used;
    int code = payload(p, data + i, len - i, &used);
    i += used;
    if (code != 0) {
      *consumed = i;
      return fail(p, code, ev);
    }
    if (p->remaining > 0) continue;
    int type = frame_end(p, ev);
    if (type != YMO_WS_EV_NEED_MORE) {
      *consumed = i;
      return type;
    }
  }
  *consumed = len;
  return set_event(ev, YMO_WS_EV_NEED_MORE, 0, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* The writer.                                                              */

size_t ymo__ws_frame_header(uint8_t buf[YMO_WS_HEADER_MAX], int opcode,
                            bool fin, bool compressed, uint64_t len) {
  buf[0] = (uint8_t)((fin ? 0x80 : 0) | (compressed ? 0x40 : 0) |
                     (opcode & 0x0f));
  if (len <= 125) {
    buf[1] = (uint8_t)len;
    return 2;
  }
  if (len <= 0xffff) {
    buf[1] = 126;
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    return 4;
  }
  buf[1] = 127;
  for (int k = 0; k < 8; k++) buf[2 + k] = (uint8_t)(len >> (56 - 8 * k));
  return 10;
}

int ymo__ws_close_payload(uint8_t buf[YMO_WS_CONTROL_MAX], int code,
                          const char *reason, size_t reason_len) {
  const uint8_t *r = (const uint8_t *)reason;
  if (code == 0) return reason_len == 0 ? 0 : YMO_EINVAL;
  if (!ymo__ws_close_code_valid(code) || !ymo__ws_utf8_valid(r, reason_len))
    return YMO_EINVAL;
  size_t n = reason_len;
  if (n > YMO_WS_CONTROL_MAX - 2) {
    /* Cut before the character that would not fit whole: back up over
     * continuation bytes to its lead byte. */
    n = YMO_WS_CONTROL_MAX - 2;
    while (n > 0 && (r[n] & 0xc0) == 0x80) n--;
  }
  buf[0] = (uint8_t)(code >> 8);
  buf[1] = (uint8_t)code;
  if (n > 0) memcpy(buf + 2, r, n);
  return (int)(2 + n);
}

int ymo__ws_close_frame(uint8_t buf[YMO_WS_CONTROL_FRAME_MAX], int code,
                        const char *reason, size_t reason_len) {
  int n = ymo__ws_close_payload(buf + 2, code, reason, reason_len);
  if (n < 0) return n;
  ymo__ws_frame_header(buf, YMO_WS_OP_CLOSE, true, false, (uint64_t)n);
  return 2 + n;
}

int ymo__ws_control_frame(uint8_t buf[YMO_WS_CONTROL_FRAME_MAX], int opcode,
                          const uint8_t *payload, size_t len) {
  if ((opcode != YMO_WS_OP_PING && opcode != YMO_WS_OP_PONG) ||
      len > YMO_WS_CONTROL_MAX)
    return YMO_EINVAL;
  ymo__ws_frame_header(buf, opcode, true, false, len);
  if (len > 0) memcpy(buf + 2, payload, len);
  return (int)(2 + len);
}

/* ------------------------------------------------------------------------ */
/* The deflater.                                                            */

struct ymo_ws_deflater {
  z_stream z;
  bool no_context; /* server_no_context_takeover: reset after a message. */
  uint8_t *buf;    /* The last output. */
  size_t cap;
};

ymo_ws_deflater_t *ymo__ws_deflater_new(
    const ymo_ws_deflate_params_t *params) {
  ymo_ws_deflater_t *d = calloc(1, sizeof(*d));
  if (d == NULL) return NULL;
  int bits = params->server_max_window_bits;
  /* zlib's raw deflate has no 256-byte window (bits 8); the negotiation
   * never agrees to one. */
  if (bits < 9 || bits > 15) bits = 15;
  d->no_context = params->server_no_context_takeover;
  /* memLevel 8 is zlib's default; the window decides the rest. */
  if (deflateInit2(&d->z, DEFLATE_LEVEL, Z_DEFLATED, -bits, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    free(d);
    return NULL;
  }
  return d;
}

static bool deflater_grow(ymo_ws_deflater_t *d, size_t need) {
  if (need <= d->cap) return true;
  size_t cap = d->cap ? d->cap : 1024;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  uint8_t *buf = realloc(d->buf, cap);
  if (buf == NULL) return false;
  d->buf = buf;
  d->cap = cap;
  return true;
}

int ymo__ws_deflate(ymo_ws_deflater_t *d, const uint8_t *in, size_t len,
                    bool fin, const uint8_t **out, size_t *out_len) {
  z_stream *z = &d->z;
  size_t n = 0;
  /* A sync flush adds an empty stored block (5 bytes) and may add a few
   * bytes of pending bits to what deflateBound allows for. */
  if (!deflater_grow(d, deflateBound(z, (uLong)len) + 16)) return YMO_ENOMEM;
  z->next_in = (Bytef *)in;
  z->avail_in = 0;
  size_t left = len;
  for (;;) {
    /* avail_in is 32 bits wide: feed the input in pieces that fit. */
    if (z->avail_in == 0 && left > 0) {
      z->avail_in = left > UINT_MAX ? UINT_MAX : (uInt)left;
      left -= z->avail_in;
    }
    if (n == d->cap && !deflater_grow(d, d->cap * 2)) return YMO_ENOMEM;
    size_t room = d->cap - n;
    z->next_out = d->buf + n;
    z->avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
    uInt before = z->avail_out;
    int rc = deflate(z, left > 0 ? Z_NO_FLUSH : Z_SYNC_FLUSH);
    n += before - z->avail_out;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return YMO_EINVAL;
    /* Done when all input is in and the flush left room to spare (a
     * Z_BUF_ERROR, no progress, can only mean the output was full). */
    if (left == 0 && z->avail_in == 0 && z->avail_out > 0) break;
  }
  if (fin) {
    if (n >= 4 && memcmp(d->buf + n - 4, deflate_tail, 4) == 0) {
      n -= 4;
    } else if (n == 0) {
      /* Nothing since the last piece's flush (zlib makes no second flush
       * without new input), so the message's bytes so far end in
       * 00 00 ff ff, already sent. The receiver appends another, which must
       * not be read as the start of a stored block: send the header byte
       * that makes the two an empty stored block. */
      d->buf[n++] = 0x00;
    }
    if (d->no_context && deflateReset(z) != Z_OK) return YMO_EINVAL;
  }
  *out = d->buf;
  *out_len = n;
  return 0;
}

void ymo__ws_deflater_trim(ymo_ws_deflater_t *d) {
  if (d != NULL && d->cap > KEEP_BUF) {
    free(d->buf);
    d->buf = NULL;
    d->cap = 0;
  }
}

void ymo__ws_deflater_free(ymo_ws_deflater_t *d) {
  if (d == NULL) return;
  deflateEnd(&d->z);
  free(d->buf);
  free(d);
}
