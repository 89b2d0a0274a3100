/* Layer 3: response building. Reason phrases, the `Date` line cache, the
 * head (status line and framing), chunk framing and the canned plain-text
 * pages, with one builder that every response goes through: a JS handler's
 * (ymo_worker_respond), a static route's, and L's own error pages. */
#ifndef YMO_RESPONSE_H
#define YMO_RESPONSE_H

#include <time.h>

#include "exchange.h"

/* A cached "Date: ...\r\n" line, reformatted when the second changes. Each
 * thread that builds responses keeps its own. */
typedef struct ymo_date {
  time_t sec;
  char line[40];
} ymo_date_t;

/* The reason phrase for status ("" for codes without one). */
const char *ymo__reason(int status);

/* What a response is to say. The caller fills the inputs; the builder
 * decides the framing and writes the outputs. */
typedef struct ymo_response {
  /* In. */
  int status;
  const uint8_t *fields;  /* "Name: value\r\n" lines, without framing. */
  size_t fields_len;
  const uint8_t *body;
  size_t body_len;
  bool done;   /* The body is complete (Content-Length), else streamed. */
  bool head;   /* The request was HEAD: framed as for GET, no body bytes. */
  bool http10; /* The client speaks HTTP/1.0. */
  bool close;  /* In: close after it. Out: also when a 1.0 stream needs it. */
  /* With done and head: fields carry the app's Content-Length, so none is
   * added (YMO_RESP_OWN_LENGTH). Ignored otherwise. */
  bool own_length;
  /* The keep-alive timeout, announced as "Keep-Alive: timeout=N" (whole
   * seconds, at least 1) when the connection stays open; 0 for none. */
  int64_t keepalive_ms;
  /* Out. */
  bool chunked; /* The rest of the body goes in chunks. */
  bool no_body; /* No body bytes are sent (HEAD, 204, 304). */
} ymo_response_t;

/* Fills r with ymo's standard page for status: the reason phrase as a
 * text/plain body. The framing inputs (done, head, ...) are the caller's. */
void ymo__response_canned(ymo_response_t *r, int status);

/* Builds the head (status line, Date from `date`, framing, r's fields) and
 * the first part of the body into one output piece of ex; its flags say
 * YMO_RESP_DONE when r->done and YMO_RESP_CLOSE when r->close. Returns
 * YMO_EINVAL when the head does not fit, YMO_ENOMEM, or 0. */
int ymo__response_start(ymo_response_t *r, ymo_date_t *date,
                        ymo_exchange_t *ex, ymo_out_t **out);

/* Builds the next piece of a streamed body of ex: a chunk when chunked (and
 * the last-chunk when last), else the bytes themselves. NULL when out of
 * memory. */
ymo_out_t *ymo__response_more(ymo_exchange_t *ex, const uint8_t *body,
                              size_t len, bool chunked, bool last, int flags);

#endif /* YMO_RESPONSE_H */
