/* Layer 5, beside HTTP/1.1: the WebSocket opening handshake (see ws.h).
 * Pure functions over header values: the checks of RFC 6455 section 4.2.1,
 * the Sec-WebSocket-Accept value of section 4.2.2, and the
 * permessage-deflate negotiation of RFC 7692 section 7.1. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sha1.h"
#include "ws.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* RFC 9110 section 5.6.2: tchar. */
static bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return true;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Drops leading and trailing OWS from *v. */
static void trim(const char **v, size_t *len) {
  while (*len > 0 && is_ows((*v)[0])) {
    (*v)++;
    (*len)--;
  }
  while (*len > 0 && is_ows((*v)[*len - 1])) (*len)--;
}

static bool token_eq(const char *t, size_t len, const char *word) {
  return strlen(word) == len && strncasecmp(t, word, len) == 0;
}

/* ------------------------------------------------------------------------ */
/* Header checks.                                                           */

bool ymo__ws_list_has_token(const char *value, size_t len, const char *token) {
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && value[i] != ',') continue;
    const char *e = value + start;
    size_t elen = i - start;
    trim(&e, &elen);
    if (token_eq(e, elen, token)) return true;
    start = i + 1;
  }
  return false;
}

bool ymo__ws_check_connection(const char *value, size_t len) {
  return ymo__ws_list_has_token(value, len, "upgrade");
}

bool ymo__ws_check_upgrade(const char *value, size_t len) {
  return ymo__ws_list_has_token(value, len, "websocket");
}

bool ymo__ws_check_version(const char *value, size_t len) {
  trim(&value, &len);
  return len == 2 && value[0] == '1' && value[1] == '3';
}

static int b64_value(char c) {
  const char *at = c != '\0' ? strchr(b64_chars, c) : NULL;
  return at != NULL ? (int)(at - b64_chars) : -1;
}

bool ymo__ws_check_key(const char *value, size_t len) {
  trim(&value, &len);
  if (len != 24 || value[22] != '=' || value[23] != '=') return false;
  for (int i = 0; i < 22; i++)
    if (b64_value(value[i]) < 0) return false;
  /* 16 bytes are 128 bits; 22 characters carry 132: the last character's
   * low 4 bits must be zero for the encoding to be the canonical one. */
  return (b64_value(value[21]) & 0x0f) == 0;
}

/* Writes the base64 of len bytes (RFC 4648 section 4) and a NUL. */
static void b64_encode(const uint8_t *in, size_t len, char *out) {
  size_t o = 0, i = 0;
  for (; len - i >= 3; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64_chars[v >> 18];
    out[o++] = b64_chars[(v >> 12) & 63];
    out[o++] = b64_chars[(v >> 6) & 63];
    out[o++] = b64_chars[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = b64_chars[v >> 18];
    out[o++] = b64_chars[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = b64_chars[v >> 18];
    out[o++] = b64_chars[(v >> 12) & 63];
    out[o++] = b64_chars[(v >> 6) & 63];
    out[o++] = '=';
  }
  out[o] = '\0';
}

int ymo__ws_accept(const char *key, size_t len,
                   char out[YMO_WS_ACCEPT_LEN + 1]) {
  trim(&key, &len);
  if (!ymo__ws_check_key(key, len)) return YMO_EINVAL;
  ymo_sha1_t c;
  uint8_t digest[YMO_SHA1_DIGEST_SIZE];
  ymo__sha1_init(&c);
  ymo__sha1_update(&c, key, len);
  ymo__sha1_update(&c, ws_guid, sizeof(ws_guid) - 1);
  ymo__sha1_final(&c, digest);
  b64_encode(digest, sizeof(digest), out);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* permessage-deflate negotiation.                                          */

/* A reader over one Sec-WebSocket-Extensions value (RFC 6455 section 9.1):
 *   extension-list = 1#extension
 *   extension      = token *( OWS ";" OWS param )
 *   param          = token [ OWS "=" OWS ( token / quoted-string ) ] */
typedef struct scan {
  const char *s;
  size_t len, at;
} scan_t;

static void skip_ows(scan_t *sc) {
  while (sc->at < sc->len && is_ows(sc->s[sc->at])) sc->at++;
}

static bool peek(const scan_t *sc, char c) {
  return sc->at < sc->len && sc->s[sc->at] == c;
}

static bool scan_token(scan_t *sc, const char **t, size_t *tlen) {
  size_t b = sc->at;
  while (sc->at < sc->len && is_tchar(sc->s[sc->at])) sc->at++;
  *t = sc->s + b;
  *tlen = sc->at - b;
  return *tlen > 0;
}

/* A parameter's value, unquoted: at most 15 bytes are kept (every value
 * this extension knows is shorter); vlen is the whole length, and is_token
 * whether it is a token (RFC 6455 section 9.1 asks that of quoted values
 * too; only permessage-deflate's own are held to it here). */
typedef struct value {
  char v[16];
  size_t vlen;
  bool is_token;
} value_t;

/* Reads a token or a quoted-string; false when neither is there. */
static bool scan_value(scan_t *sc, value_t *val) {
  val->vlen = 0;
  val->is_token = true;
  if (!peek(sc, '"')) {
    const char *t;
    size_t tlen;
    if (!scan_token(sc, &t, &tlen)) return false;
    memcpy(val->v, t, tlen < 15 ? tlen : 15);
    val->vlen = tlen;
    return true;
  }
  /* quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE */
  sc->at++;
  while (sc->at < sc->len) {
    char c = sc->s[sc->at++];
    if (c == '"') {
      if (val->vlen == 0) val->is_token = false;
      return true;
    }
    if (c == '\\') {
      if (sc->at == sc->len) return false;
      c = sc->s[sc->at++];
    }
    if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7f) return false;
    if (!is_tchar(c)) val->is_token = false;
    if (val->vlen < 15) val->v[val->vlen] = c;
    val->vlen++;
  }
  return false; /* No closing quote. */
}

/* Window bits as RFC 7692 section 7.1.2 writes them: 8..15, no leading
 * zero. Returns them, or 0. */
static int window_bits(const value_t *val) {
  if (val->vlen == 1 && val->v[0] >= '8' && val->v[0] <= '9')
    return val->v[0] - '0';
  if (val->vlen == 2 && val->v[0] == '1' && val->v[1] >= '0' &&
      val->v[1] <= '5')
    return 10 + (val->v[1] - '0');
  return 0;
}

/* What one permessage-deflate offer asks for. */
typedef struct offer {
  bool ok; /* Every parameter known, well-formed, not repeated. */
  bool server_no_context, client_no_context;
  bool server_bits_seen, client_bits_seen;
  int server_bits;
} offer_t;

static void offer_param(offer_t *o, const char *name, size_t nlen,
                        const value_t *val, bool has_value) {
  if (has_value && !val->is_token) o->ok = false;
  if (token_eq(name, nlen, "server_no_context_takeover")) {
    if (o->server_no_context || has_value) o->ok = false;
    o->server_no_context = true;
  } else if (token_eq(name, nlen, "client_no_context_takeover")) {
    if (o->client_no_context || has_value) o->ok = false;
    o->client_no_context = true;
  } else if (token_eq(name, nlen, "server_max_window_bits")) {
    int bits = has_value ? window_bits(val) : 0;
    /* 8 is declined: zlib makes a 512-byte window instead (see ws.h). */
    if (o->server_bits_seen || bits < 9) o->ok = false;
    o->server_bits_seen = true;
    o->server_bits = bits;
  } else if (token_eq(name, nlen, "client_max_window_bits")) {
    /* Bare, the client only says it understands the parameter. Either way
     * the server's decompressor has the largest window, so it needs no
     * answer. */
    if (o->client_bits_seen || (has_value && window_bits(val) == 0))
      o->ok = false;
    o->client_bits_seen = true;
  } else {
    o->ok = false;
  }
}

static void accept_offer(const offer_t *o, unsigned flags,
                         ymo_ws_deflate_params_t *params,
                         char resp[YMO_WS_EXTENSIONS_MAX]) {
  bool no_context = (flags & YMO_WS_DEFLATE_NO_CONTEXT) != 0;
  params->enabled = true;
  params->server_no_context_takeover = o->server_no_context || no_context;
  params->client_no_context_takeover = o->client_no_context || no_context;
  params->server_max_window_bits = o->server_bits_seen ? o->server_bits : 15;
  size_t n = (size_t)snprintf(resp, YMO_WS_EXTENSIONS_MAX, "%s",
                              "permessage-deflate");
  if (params->server_no_context_takeover)
    n += (size_t)snprintf(resp + n, YMO_WS_EXTENSIONS_MAX - n, "%s",
                          "; server_no_context_takeover");
  if (params->client_no_context_takeover)
    n += (size_t)snprintf(resp + n, YMO_WS_EXTENSIONS_MAX - n, "%s",
                          "; client_no_context_takeover");
  if (o->server_bits_seen)
    snprintf(resp + n, YMO_WS_EXTENSIONS_MAX - n,
             "; server_max_window_bits=%d", o->server_bits);
}

bool ymo__ws_negotiate_deflate(const char *value, size_t len,
                               unsigned flags,
                               ymo_ws_deflate_params_t *params,
                               char resp[YMO_WS_EXTENSIONS_MAX]) {
  memset(params, 0, sizeof(*params));
  resp[0] = '\0';
  scan_t sc = {value, len, 0};
  for (;;) {
    skip_ows(&sc);
    if (sc.at == sc.len) return false;
    if (peek(&sc, ',')) { /* An empty list element (RFC 9110 5.6.1). */
      sc.at++;
      continue;
    }
    const char *name;
    size_t nlen;
    if (!scan_token(&sc, &name, &nlen)) return false;
    bool ours = token_eq(name, nlen, "permessage-deflate");
    offer_t o = {.ok = true};
    for (;;) {
      skip_ows(&sc);
      if (!peek(&sc, ';')) break;
      sc.at++;
      skip_ows(&sc);
      const char *pname;
      size_t plen;
      if (!scan_token(&sc, &pname, &plen)) return false;
      skip_ows(&sc);
      value_t val = {{0}, 0, true};
      bool has_value = peek(&sc, '=');
      if (has_value) {
        sc.at++;
        skip_ows(&sc);
        if (!scan_value(&sc, &val)) return false;
      }
      if (ours) offer_param(&o, pname, plen, &val, has_value);
    }
    /* Past an offer comes a comma or the end; anything else leaves the
     * rest unreadable, so nothing after it is accepted. */
    if (sc.at < sc.len && !peek(&sc, ',')) return false;
    if (ours && o.ok) {
      accept_offer(&o, flags, params, resp);
      return true;
    }
  }
}
