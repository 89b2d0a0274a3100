/* Layer 5: the dynamic routes, path patterns with ":name" parameters and a
 * final "*" wildcard (ymo_server_add_route). L matches a request's path
 * against them when its head is complete and writes the route and its
 * parameter values into the request record, so JavaScript dispatches
 * without parsing the path again. The server owns the table; it is
 * immutable once the loop runs.
 *
 * Matching follows Bun's router: the path is split into segments after its
 * dot segments are resolved and a backslash is read as a slash (as the URL
 * parser does for request.url); per segment a literal beats a parameter,
 * which beats a wildcard, so exact routes win over parameter routes, which
 * win over wildcards. A parameter takes one non-empty segment; a wildcard,
 * only last, takes one or more (the empty one after a trailing slash
 * counts). Values are the raw bytes of the path, percent-encoded as sent. */
#include <stdlib.h>
#include <string.h>

#include "conn.h"

/* A path with more segments than this goes unrouted (to the fallback). */
#define MAX_SEGMENTS 64

enum { SEG_LITERAL, SEG_PARAM, SEG_WILDCARD };

typedef struct {
  uint8_t kind;
  uint16_t len; /* Literal bytes. */
  char *text;
} seg_t;

struct ymo_pattern {
  int32_t id;
  char *method; /* NULL: any method. */
  size_t method_len;
  seg_t *segs;
  size_t n_segs;
  size_t n_params;
};

typedef struct {
  const uint8_t *at;
  size_t len;
} span_t;

/* How many dots segment s[0, l) is, each "." or "%2e" in any case, when it
 * is made of nothing else; 0 otherwise. */
static size_t dot_count(const uint8_t *s, size_t l) {
  size_t k = 0, dots = 0;
  while (k < l) {
    if (s[k] == '.')
      k++;
    else if (k + 3 <= l && s[k] == '%' && s[k + 1] == '2' &&
             (s[k + 2] | 0x20) == 'e')
      k += 3;
    else
      return 0;
    dots++;
  }
  return dots;
}

/* The segments of path[0, len) after the leading slash, with "." and ".."
 * (also spelt %2e) resolved and "\" read as "/"; false if there are too
 * many. A dot segment last leaves an empty segment, as "/a/b/.." is "/a/". */
static bool split(const uint8_t *path, size_t len, span_t *out, size_t *n) {
  size_t count = 0;
  size_t i = 1;
  for (;;) {
    size_t start = i;
    while (i < len && path[i] != '/' && path[i] != '\\') i++;
    const uint8_t *s = path + start;
    size_t l = i - start;
    bool last = i >= len;
    size_t dots = dot_count(s, l);
    bool dot = dots == 1, dotdot = dots == 2;
    if (dot || dotdot) {
      if (dotdot && count > 0) count--;
      if (last) {
        if (count == MAX_SEGMENTS) return false;
        out[count++] = (span_t){s + l, 0};
      }
    } else {
      if (count == MAX_SEGMENTS) return false;
      out[count++] = (span_t){s, l};
    }
    if (last) break;
    i++; /* The separator. */
  }
  *n = count;
  return true;
}

/* The path of a request target: origin form up to "?" or "#", or the path
 * of an absolute form ("/" when it has none); other forms have none. */
static bool target_path(const uint8_t *t, size_t len, const uint8_t **path,
                        size_t *path_len) {
  const uint8_t *p = t, *end = t + len;
  if (len == 0) return false;
  if (t[0] != '/') {
    const uint8_t *scheme = memchr(t, ':', len);
    if (scheme == NULL || end - scheme < 3 || scheme[1] != '/' ||
        scheme[2] != '/')
      return false;
    p = scheme + 3;
    while (p < end && *p != '/' && *p != '?' && *p != '#') p++;
    if (p == end || *p != '/') {
      *path = (const uint8_t *)"/";
      *path_len = 1;
      return true;
    }
  }
  const uint8_t *q = p;
  while (q < end && *q != '?' && *q != '#') q++;
  *path = p;
  *path_len = (size_t)(q - p);
  return true;
}

static void pattern_free(ymo_pattern_t *p) {
  for (size_t i = 0; i < p->n_segs; i++) free(p->segs[i].text);
  free(p->segs);
  free(p->method);
}

int ymo__router_add(ymo_router_t *r, const char *pattern, const char *method,
                    int32_t id) {
  size_t len = strlen(pattern);
  if (len == 0 || pattern[0] != '/' || len > UINT16_MAX) return YMO_EINVAL;
  ymo_pattern_t p = {.id = id};
  p.segs = calloc(MAX_SEGMENTS, sizeof(*p.segs));
  if (p.segs == NULL) return YMO_ENOMEM;
  int err = 0;
  size_t i = 1;
  for (;;) {
    size_t start = i;
    while (i < len && pattern[i] != '/') i++;
    size_t l = i - start;
    const char *s = pattern + start;
    if (p.n_segs == MAX_SEGMENTS) {
      err = YMO_EINVAL;
      break;
    }
    seg_t *seg = &p.segs[p.n_segs++];
    if (l == 1 && s[0] == '*') {
      /* A wildcard ends the pattern. */
      seg->kind = SEG_WILDCARD;
      if (i < len) err = YMO_EINVAL;
      break;
    }
    if (l > 0 && s[0] == ':') {
      if (l == 1) { /* A parameter needs a name. */
        err = YMO_EINVAL;
        break;
      }
      seg->kind = SEG_PARAM;
      p.n_params++;
    } else {
      seg->kind = SEG_LITERAL;
      seg->len = (uint16_t)l;
      seg->text = malloc(l + 1);
      if (seg->text == NULL) {
        err = YMO_ENOMEM;
        break;
      }
      memcpy(seg->text, s, l);
      seg->text[l] = '\0';
    }
    if (i >= len) break;
    i++;
  }
  if (err == 0 && method != NULL) {
    p.method_len = strlen(method);
    p.method = malloc(p.method_len + 1);
    if (p.method == NULL)
      err = YMO_ENOMEM;
    else
      memcpy(p.method, method, p.method_len + 1);
  }
  ymo_pattern_t *grown = NULL;
  if (err == 0) {
    grown = realloc(r->patterns, (r->n_patterns + 1) * sizeof(*grown));
    if (grown == NULL) err = YMO_ENOMEM;
  }
  if (err != 0) {
    pattern_free(&p);
    return err;
  }
  r->patterns = grown;
  r->patterns[r->n_patterns++] = p;
  return 0;
}

/* Whether p takes a request with this method: its own, or any; a GET route
 * also answers HEAD (its body is left out by the response builder). */
static bool method_fits(const ymo_pattern_t *p, const uint8_t *m, size_t n) {
  if (p->method == NULL) return true;
  if (p->method_len == n && memcmp(p->method, m, n) == 0) return true;
  return n == 4 && memcmp(m, "HEAD", 4) == 0 && p->method_len == 3 &&
         memcmp(p->method, "GET", 3) == 0;
}

static bool matches(const ymo_pattern_t *p, const span_t *segs, size_t n) {
  for (size_t i = 0; i < p->n_segs; i++) {
    const seg_t *seg = &p->segs[i];
    if (seg->kind == SEG_WILDCARD) return i < n;
    if (i >= n) return false;
    if (seg->kind == SEG_PARAM) {
      if (segs[i].len == 0) return false;
    } else if (seg->len != segs[i].len ||
               memcmp(seg->text, segs[i].at, seg->len) != 0) {
      return false;
    }
  }
  return p->n_segs == n;
}

/* Whether a is more specific than b: at the first segment where their
 * kinds differ, the lower kind (literal, parameter, wildcard) wins. */
static bool more_specific(const ymo_pattern_t *a, const ymo_pattern_t *b) {
  for (size_t i = 0; i < a->n_segs && i < b->n_segs; i++) {
    if (a->segs[i].kind != b->segs[i].kind)
      return a->segs[i].kind < b->segs[i].kind;
  }
  return false;
}

bool ymo__router_match(const ymo_router_t *r, ymo_exchange_t *ex,
                       const uint8_t *method, size_t method_len,
                       const uint8_t *target, size_t target_len,
                       uint32_t *route, uint32_t *n_params) {
  *route = 0;
  *n_params = 0;
  if (r->n_patterns == 0) return true;
  const uint8_t *path;
  size_t path_len;
  span_t segs[MAX_SEGMENTS];
  size_t n;
  if (!target_path(target, target_len, &path, &path_len) ||
      !split(path, path_len, segs, &n))
    return true;
  const ymo_pattern_t *best = NULL;
  for (size_t i = 0; i < r->n_patterns; i++) {
    const ymo_pattern_t *p = &r->patterns[i];
    if (!method_fits(p, method, method_len) || !matches(p, segs, n)) continue;
    /* Ties go to the route added first. */
    if (best == NULL || more_specific(p, best)) best = p;
  }
  if (best == NULL) return true;
  /* The path is usually the record's own bytes (the target is in it), and
   * appending the values may move the record: copy them from a copy. */
  uint8_t local[1024];
  uint8_t *copy = best->n_params == 0 || path_len <= sizeof(local)
                      ? local
                      : malloc(path_len);
  if (copy == NULL) return false;
  if (best->n_params > 0) memcpy(copy, path, path_len);
  bool ok = true;
  for (size_t i = 0; i < best->n_segs && ok; i++) {
    if (best->segs[i].kind != SEG_PARAM) continue;
    size_t at = ymo__record_field_open(ex);
    ok = at != 0 && ymo__record_field_append(ex, at, true,
                                             copy + (segs[i].at - path),
                                             segs[i].len);
  }
  if (copy != local) free(copy);
  if (!ok) return false;
  *route = (uint32_t)best->id + 1;
  *n_params = (uint32_t)best->n_params;
  return true;
}

void ymo__router_free(ymo_router_t *r) {
  for (size_t i = 0; i < r->n_patterns; i++) pattern_free(&r->patterns[i]);
  free(r->patterns);
  r->patterns = NULL;
  r->n_patterns = 0;
}
