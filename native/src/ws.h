/* Layer 5, beside HTTP/1.1: the WebSocket protocol's core (RFC 6455), with
 * permessage-deflate (RFC 7692), as pure functions and plain structs that
 * know nothing of sockets, sessions or threads. The connection layer calls
 * them on L; each connection owns its own parser and deflater, and nothing
 * here has global state, so loops on different threads never share any.
 *
 *  - ws.c: the incremental frame parser (client to server), which checks
 *    every rule the RFC puts on a client's frames, assembles messages,
 *    inflates compressed ones and validates text as UTF-8; the frame writer
 *    (server to client headers, close, ping and pong frames); the deflater
 *    for outgoing messages; the UTF-8 and close-code checks.
 *  - ws_handshake.c: the opening handshake's header checks, the
 *    Sec-WebSocket-Accept value, and the permessage-deflate negotiation.
 *
 * Allocation failures are values, never crashes: the parser reports them as
 * an error event (close code 1011), the other functions return YMO_ENOMEM or
 * NULL as documented. */
#ifndef YMO_WS_H
#define YMO_WS_H

#include <stdint.h>

#include "base.h"

/* Frame opcodes (RFC 6455 section 5.2). */
enum ymo_ws_opcode {
  YMO_WS_OP_CONTINUATION = 0x0,
  YMO_WS_OP_TEXT = 0x1,
  YMO_WS_OP_BINARY = 0x2,
  YMO_WS_OP_CLOSE = 0x8,
  YMO_WS_OP_PING = 0x9,
  YMO_WS_OP_PONG = 0xa,
};

/* Close codes this module produces or names (RFC 6455 section 7.4.1). */
enum ymo_ws_close_code {
  YMO_WS_CLOSE_NORMAL = 1000,
  YMO_WS_CLOSE_GOING_AWAY = 1001,
  YMO_WS_CLOSE_PROTOCOL = 1002,
  YMO_WS_CLOSE_NO_STATUS = 1005, /* Never sent: a close frame without code. */
  YMO_WS_CLOSE_INVALID_DATA = 1007,
  YMO_WS_CLOSE_TOO_BIG = 1009,
  YMO_WS_CLOSE_INTERNAL = 1011,
};

/* ---------------------------------------------------------------------------
 * permessage-deflate parameters, as negotiated (ymo__ws_negotiate_deflate)
 * and then given to the parser and the deflater of one connection.
 * ------------------------------------------------------------------------- */
typedef struct ymo_ws_deflate_params {
  bool enabled; /* The extension is in use; false: everything below unused. */
  /* The server resets its compressor after each message. */
  bool server_no_context_takeover;
  /* The client resets its compressor after each message, so the server's
   * decompressor is reset too (and could be freed between messages). */
  bool client_no_context_takeover;
  /* The server's LZ77 window, 2^bits bytes: 9..15 (see the negotiation for
   * why never 8). */
  int server_max_window_bits;
} ymo_ws_deflate_params_t;

/* ---------------------------------------------------------------------------
 * UTF-8 (RFC 3629): an incremental validator that fails at the first byte
 * after which no continuation could make the text valid: overlong forms,
 * surrogates (U+D800..U+DFFF) and code points past U+10FFFF are rejected at
 * their second byte at the latest (at the first for C0, C1, F5..FF).
 * ------------------------------------------------------------------------- */
typedef struct ymo_ws_utf8 {
  uint8_t need;   /* Continuation bytes still owed by the current char. */
  uint8_t lo, hi; /* The range the next continuation byte must fall in. */
} ymo_ws_utf8_t;

static inline void ymo__ws_utf8_init(ymo_ws_utf8_t *u) {
  u->need = 0;
  u->lo = 0x80;
  u->hi = 0xbf;
}
/* Checks len more bytes; returns len when they may still be valid text,
 * else the offset of the first byte that makes them invalid (the state is
 * then meaningless). */
size_t ymo__ws_utf8_feed(ymo_ws_utf8_t *u, const uint8_t *p, size_t len);
/* Whether the text ends here on a whole character. */
static inline bool ymo__ws_utf8_complete(const ymo_ws_utf8_t *u) {
  return u->need == 0;
}
/* Whether p is complete, valid UTF-8. */
bool ymo__ws_utf8_valid(const uint8_t *p, size_t len);

/* Whether a close code may be received (and sent): 1000-1003, 1007-1014
 * (IANA's registry adds 1012-1014 to the RFC's list) and 3000-4999. 1004,
 * 1005, 1006 and 1015 are reserved or may never appear on the wire. */
bool ymo__ws_close_code_valid(int code);

/* ---------------------------------------------------------------------------
 * The frame parser: bytes from the client in, one event at a time out.
 *
 * Usage, for each buffer read from the connection:
 *
 *   size_t off = 0;
 *   for (;;) {
 *     size_t used;
 *     ymo_ws_event_t ev;
 *     int type = ymo__ws_parse(&p, buf + off, len - off, &used, &ev);
 *     off += used;
 *     if (type == YMO_WS_EV_NEED_MORE) break;   (then off == len)
 *     act on ev; on CLOSE or ERROR answer with a close frame and stop.
 *   }
 *
 * A call consumes bytes up to the end of the frame that completes an event
 * and returns that event, or consumes everything it was given and returns
 * NEED_MORE. It copies what it needs, so the buffer may be reused as soon as
 * it returns, and any split of the same bytes (one byte per call included)
 * gives the same events. ev->data points into the parser and stays valid
 * until the next call to ymo__ws_parse() or ymo__ws_parser_free().
 *
 * The parser is fail-fast: an ERROR comes at the byte that breaks a rule
 * (the frame header byte, the payload byte that makes text invalid), not at
 * the end of the frame. After ERROR every further call returns the same
 * ERROR and consumes nothing; after CLOSE every further call consumes its
 * bytes and ignores them (RFC 6455 section 5.5.1: nothing may follow a
 * close frame), returning NEED_MORE.
 * ------------------------------------------------------------------------- */
enum ymo_ws_event_type {
  YMO_WS_EV_NEED_MORE = 0, /* All input consumed; no event yet. */
  YMO_WS_EV_TEXT,          /* A whole text message: data, len (UTF-8). */
  YMO_WS_EV_BINARY,        /* A whole binary message: data, len. */
  YMO_WS_EV_PING,          /* data, len (at most 125): answer with a pong. */
  YMO_WS_EV_PONG,          /* data, len (at most 125). */
  YMO_WS_EV_CLOSE,         /* code (1005 when the frame had none), reason in
                              data, len (valid UTF-8, at most 123 bytes). */
  YMO_WS_EV_ERROR,         /* The client broke the protocol or a limit, or
                              memory ran out: send a close frame with code
                              (1002, 1007, 1009 or 1011) and close. */
};

typedef struct ymo_ws_event {
  int type;            /* enum ymo_ws_event_type. */
  int code;            /* CLOSE: received code; ERROR: code to send. */
  const uint8_t *data; /* Payload, message or reason; never NULL. */
  size_t len;
} ymo_ws_event_t;

/* The largest control frame payload (RFC 6455 section 5.5). */
#define YMO_WS_CONTROL_MAX 125

/* Where the parser is in the byte stream. */
enum ymo_ws_parser_state {
  YMO__WS_HEADER,  /* Reading a frame header. */
  YMO__WS_PAYLOAD, /* Reading a frame's payload. */
  YMO__WS_CLOSED,  /* A close frame was read: input ignored. */
  YMO__WS_FAILED,  /* An error was reported: code in error. */
};

/* One connection's parser. It is a plain struct so the connection can embed
 * it; initialised by ymo__ws_parser_init() and owned by the connection,
 * which frees its buffers with ymo__ws_parser_free(). Used on one thread at
 * a time. */
typedef struct ymo_ws_parser {
  /* Settings, fixed at init. */
  size_t max_message; /* Largest message, in bytes after inflating. */
  ymo_ws_deflate_params_t deflate;

  int state; /* enum ymo_ws_parser_state. */
  int error; /* The close code of the ERROR, once FAILED. */

  /* The frame being read: its header bytes, hdr_need of them in all (2 until
   * the second byte tells how many more), then its fields. */
  uint8_t hdr[14];
  uint8_t hdr_len, hdr_need;
  uint8_t opcode;
  bool fin, rsv1;
  uint8_t mask[4];
  uint64_t remaining; /* Payload bytes still to read. */
  uint64_t offset;    /* Payload bytes read, for the mask's position. */

  /* The data message being assembled. buf holds the payload, inflated when
   * compressed; len of cap bytes used. wire_len counts the payload bytes
   * as they came in the frames, for the limit before inflating. */
  bool in_message;
  bool compressed;
  uint8_t msg_opcode;
  uint8_t *buf;
  size_t len, cap;
  uint64_t wire_len;
  ymo_ws_utf8_t utf8; /* Text only: the validator over the whole message. */
  bool delivered;     /* The last event was this message: drop it next. */

  /* The control frame being read (it may come between two fragments). */
  uint8_t ctrl[YMO_WS_CONTROL_MAX];
  size_t ctrl_len;

  /* The decompressor, made on the first compressed message (struct
   * z_stream_s is zlib's z_stream); z_ended: its stream ended inside the
   * current message (a final DEFLATE block, RFC 7692 section 7.2.3.5). */
  struct z_stream_s *z;
  bool z_ended;
} ymo_ws_parser_t;

/* Sets up p for one connection. max_message bounds every data message
 * (the sum of its frames' payloads, and its size after inflating; SIZE_MAX
 * for no limit): a compressed message's payload counts too, so one of
 * incompressible data within a few bytes of the limit may be refused.
 * deflate is the negotiated permessage-deflate, or NULL.
 * Allocates nothing: buffers come with the first message. */
void ymo__ws_parser_init(ymo_ws_parser_t *p, size_t max_message,
                         const ymo_ws_deflate_params_t *deflate);
/* Returns the next event (enum ymo_ws_event_type), filling *ev, and the
 * bytes of data it consumed in *consumed. See above. */
int ymo__ws_parse(ymo_ws_parser_t *p, const uint8_t *data, size_t len,
                  size_t *consumed, ymo_ws_event_t *ev);
/* Gives back the message buffer while the parser is between messages, for
 * a connection gone idle (the parser itself keeps at most 64 KiB between
 * messages), and with client_no_context_takeover the decompressor too
 * (about 40 KiB; made again for the next compressed message). The last
 * event's data is invalid from then on. Does nothing inside a fragmented
 * message. */
void ymo__ws_parser_trim(ymo_ws_parser_t *p);
/* Frees the parser's buffers and decompressor; p may be initialised again. */
void ymo__ws_parser_free(ymo_ws_parser_t *p);

/* ---------------------------------------------------------------------------
 * The frame writer: server frames are never masked.
 * ------------------------------------------------------------------------- */

/* The longest frame header the server writes: 2 bytes and a 64-bit length. */
#define YMO_WS_HEADER_MAX 10
/* The longest control frame: a 2-byte header and 125 bytes of payload. */
#define YMO_WS_CONTROL_FRAME_MAX (2 + YMO_WS_CONTROL_MAX)

/* Writes the header of a frame with opcode and a payload of len bytes into
 * buf, the length in its shortest form; compressed sets RSV1 (only on the
 * first frame of a compressed message). Returns the header's length (2, 4
 * or 10). */
size_t ymo__ws_frame_header(uint8_t buf[YMO_WS_HEADER_MAX], int opcode,
                            bool fin, bool compressed, uint64_t len);

/* Writes a close frame's payload: code, big-endian, then as much of reason
 * as fits in 123 bytes, cut at a UTF-8 character boundary. code 0 writes an
 * empty payload (no status). Returns the payload's length, or YMO_EINVAL
 * for a code that may not be sent (ymo__ws_close_code_valid) or a reason
 * that is not valid UTF-8. */
int ymo__ws_close_payload(uint8_t buf[YMO_WS_CONTROL_MAX], int code,
                          const char *reason, size_t reason_len);
/* Writes a whole close frame (header and ymo__ws_close_payload()); returns
 * its length or YMO_EINVAL. */
int ymo__ws_close_frame(uint8_t buf[YMO_WS_CONTROL_FRAME_MAX], int code,
                        const char *reason, size_t reason_len);
/* Writes a whole ping or pong frame (opcode YMO_WS_OP_PING or _PONG) with
 * payload; returns its length, or YMO_EINVAL for another opcode or a payload
 * longer than 125 bytes. A pong answering a ping carries the ping's data. */
int ymo__ws_control_frame(uint8_t buf[YMO_WS_CONTROL_FRAME_MAX], int opcode,
                          const uint8_t *payload, size_t len);

/* ---------------------------------------------------------------------------
 * The deflater: compresses outgoing messages for permessage-deflate. One
 * per connection that negotiated the extension; used on one thread at a
 * time (whichever thread builds the connection's frames).
 * ------------------------------------------------------------------------- */
typedef struct ymo_ws_deflater ymo_ws_deflater_t;

/* Returns a deflater for params (enabled), or NULL when out of memory. */
ymo_ws_deflater_t *ymo__ws_deflater_new(const ymo_ws_deflate_params_t *params);
/* Compresses the next len bytes of a message; fin ends the message. The
 * output is the payload of one frame (RSV1 on the message's first frame
 * only): flushed to a byte boundary, and with fin its trailing 00 00 ff ff
 * removed (RFC 7692 section 7.2.1); an empty final piece after a non-empty
 * one is the single byte 00, never an empty payload, so that what the
 * receiver appends still reads as an empty stored block. The output stays
 * in the deflater, at *out, until the next call. With
 * server_no_context_takeover the compressor is reset after each message.
 * Returns 0, YMO_ENOMEM or YMO_EINVAL (a zlib error). */
int ymo__ws_deflate(ymo_ws_deflater_t *d, const uint8_t *in, size_t len,
                    bool fin, const uint8_t **out, size_t *out_len);
/* Gives back the output buffer when a large message left it large. */
void ymo__ws_deflater_trim(ymo_ws_deflater_t *d);
void ymo__ws_deflater_free(ymo_ws_deflater_t *d);

/* ---------------------------------------------------------------------------
 * The opening handshake (ws_handshake.c), over header values as received
 * (surrounding whitespace is ignored). The caller checks the method (GET),
 * the version (HTTP/1.1) and Host as for any request.
 * ------------------------------------------------------------------------- */

/* Whether a comma-separated list (Connection, Upgrade) holds token as one of
 * its elements, compared case-insensitively. */
bool ymo__ws_list_has_token(const char *value, size_t len, const char *token);
/* Connection holds "upgrade"; Upgrade holds "websocket". */
bool ymo__ws_check_connection(const char *value, size_t len);
bool ymo__ws_check_upgrade(const char *value, size_t len);
/* Sec-WebSocket-Version is exactly "13". */
bool ymo__ws_check_version(const char *value, size_t len);
/* Sec-WebSocket-Key is the canonical base64 form of 16 bytes: 22 base64
 * characters, the last carrying no stray bits, and "==". */
bool ymo__ws_check_key(const char *value, size_t len);

/* The length of a Sec-WebSocket-Accept value: base64 of 20 bytes. */
#define YMO_WS_ACCEPT_LEN 28
/* Writes the Sec-WebSocket-Accept value for a key, base64(SHA-1(key +
 * "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), and a NUL. Returns 0, or
 * YMO_EINVAL when the key fails ymo__ws_check_key(). */
int ymo__ws_accept(const char *key, size_t len,
                   char out[YMO_WS_ACCEPT_LEN + 1]);

/* Room for the longest response value ymo__ws_negotiate_deflate writes. */
#define YMO_WS_EXTENSIONS_MAX 128
/* What the server asks for in the negotiation. */
enum ymo_ws_deflate_flags {
  /* Ask both sides to compress each message alone (server_ and
   * client_no_context_takeover, whether offered or not): less memory per
   * connection between messages, a worse ratio. */
  YMO_WS_DEFLATE_NO_CONTEXT = 1 << 0,
};
/* Reads one Sec-WebSocket-Extensions value (a comma-separated list of
 * offers, in the client's order of preference) and accepts the first
 * permessage-deflate offer the server can honour. With several
 * Sec-WebSocket-Extensions fields, call it for each in order until one
 * returns true. On acceptance sets *params (enabled) and writes the
 * response's Sec-WebSocket-Extensions value, NUL-terminated, into resp;
 * otherwise *params is disabled and resp holds "". An offer is declined
 * when a parameter is unknown, repeated or malformed, or when it asks for
 * server_max_window_bits=8, which zlib cannot honour (its raw deflate
 * rounds a 256-byte window up to 512, which a client that asked for 8
 * could not inflate). flags: enum ymo_ws_deflate_flags. */
bool ymo__ws_negotiate_deflate(const char *value, size_t len,
                               unsigned flags,
                               ymo_ws_deflate_params_t *params,
                               char resp[YMO_WS_EXTENSIONS_MAX]);

#endif /* YMO_WS_H */
