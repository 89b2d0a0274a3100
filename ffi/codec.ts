/**
 * The wire codec between C and JavaScript: reading the request records that
 * `ymo_worker_take()` writes (format in `native/include/ymo.h`) and writing
 * response header blocks for `ymo_worker_respond()`.
 *
 * @module
 */

/**
 * Where each field of a record sits, as `YMO_RECORD_MAP` in ymo.h says:
 * byte offset and width, little-endian (`tests/symbols_test.ts` checks the
 * two tables against each other). The header-entry fields count from the
 * entry's start.
 */
export const RECORD_FIELDS = {
  record_len: { at: 0, width: 4 },
  id: { at: 4, width: 4 },
  gen: { at: 8, width: 4 },
  http_major: { at: 12, width: 1 },
  http_minor: { at: 13, width: 1 },
  flags: { at: 14, width: 1 },
  method_len: { at: 15, width: 1 },
  url_len: { at: 16, width: 4 },
  n_headers: { at: 20, width: 4 },
  headers_len: { at: 24, width: 4 },
  body_len: { at: 28, width: 4 },
  remote_port: { at: 32, width: 2 },
  remote_family: { at: 34, width: 1 },
  reserved: { at: 35, width: 1 },
  remote_addr: { at: 36, width: 16 },
  route: { at: 52, width: 2 },
  n_params: { at: 54, width: 1 },
  reserved2: { at: 55, width: 1 },
  body_padding: { at: 15, width: 1 },
  field_name_len: { at: 0, width: 4 },
  field_value_len: { at: 4, width: 4 },
} as const;

/** Size of the fixed part of a request record (YMO_REQ_FIXED_SIZE). */
export const FIXED_SIZE = 56;
/** Size of a notice or body record's fixed part (YMO_REQ_ABORT_SIZE). */
export const NOTICE_SIZE = 16;
/** Size of the two lengths that open a header entry (YMO_REQ_FIELD_SIZE). */
export const FIELD_SIZE = 8;

// The offsets read below, taken once from the table.
const AT_RECORD_LEN = RECORD_FIELDS.record_len.at;
const AT_ID = RECORD_FIELDS.id.at;
const AT_GEN = RECORD_FIELDS.gen.at;
const AT_HTTP_MINOR = RECORD_FIELDS.http_minor.at;
const AT_FLAGS = RECORD_FIELDS.flags.at;
const AT_METHOD_LEN = RECORD_FIELDS.method_len.at;
const AT_URL_LEN = RECORD_FIELDS.url_len.at;
const AT_N_HEADERS = RECORD_FIELDS.n_headers.at;
const AT_HEADERS_LEN = RECORD_FIELDS.headers_len.at;
const AT_BODY_LEN = RECORD_FIELDS.body_len.at;
const AT_REMOTE_PORT = RECORD_FIELDS.remote_port.at;
const AT_REMOTE_FAMILY = RECORD_FIELDS.remote_family.at;
const AT_REMOTE_ADDR = RECORD_FIELDS.remote_addr.at;
const AT_ROUTE = RECORD_FIELDS.route.at;
const AT_N_PARAMS = RECORD_FIELDS.n_params.at;
const AT_BODY_PADDING = RECORD_FIELDS.body_padding.at;
const AT_FIELD_NAME_LEN = RECORD_FIELDS.field_name_len.at;
const AT_FIELD_VALUE_LEN = RECORD_FIELDS.field_value_len.at;
/** Request flag: the client asked to keep the connection open. */
export const REQF_KEEPALIVE = 1;
/** Request flag: the method is HEAD. */
export const REQF_HEAD = 2;
/** Record flag: not a request, but notice that its client went away. */
export const REQF_ABORT = 4;
/** Record flag: not a request, but notice that its response has drained. */
export const REQF_DRAIN = 8;
/** Request flag: the body is not complete; body records follow. */
export const REQF_STREAM = 16;
/** Record flag: a piece of a streaming request body. */
export const REQF_BODY = 32;
/** Record flag: the last piece of a streaming request body. */
export const REQF_END = 64;
/** On a request record: a WebSocket opening handshake that may be accepted;
 * on a body record: a WebSocket message, its opcode in http_minor's place. */
export const REQF_UPGRADE = 128;
/** Above this many unwritten bytes a streamed response waits for a drain. */
export const RESP_HIGH_WATER = 64 * 1024;
/** Above this many unwritten bytes a WebSocket asks C for a drain record. */
export const WS_HIGH_WATER = 256 * 1024;

/** One request as C handed it over. Strings are Latin-1 (HTTP bytes). */
export interface RequestRecord {
  id: number;
  gen: number;
  httpMinor: number;
  flags: number;
  method: string;
  target: string;
  /** Header fields in order, flat: name, value, name, value... Names are
   * as received. */
  fields: string[];
  /** The Host field's value, or "" when there is none. */
  host: string;
  /** A copy of the body (or of its start, with `stream`), or null. */
  body: Uint8Array<ArrayBuffer> | null;
  /** The rest of the body comes in body records. */
  stream: boolean;
  remoteHostname: string;
  remotePort: number;
  /** The dynamic route C matched (ymo_server_add_route's id + 1), or 0. */
  route: number;
  /** The route's parameter values, raw from the path (percent-encoded as
   * sent), in the pattern's order; empty without a route. */
  params: readonly string[];
}

/** TextDecoder's "latin1" is windows-1252: right for every byte but
 * 0x80-0x9F, which it maps elsewhere (0x82 to U+201A). */
const windows1252 = new TextDecoder("latin1");

/** Bytes [start, end) as Latin-1 (byte n is U+00nn, as Deno.serve and
 * Bun.serve give header bytes), for strings too long to intern. */
function latin1Long(buf: Uint8Array, start: number, end: number): string {
  let i = start;
  while (i < end && (buf[i] < 0x80 || buf[i] > 0x9f)) i++;
  if (i === end) return windows1252.decode(buf.subarray(start, end));
  let s = "";
  for (let at = start; at < end; at += 4096) {
    const part = buf.subarray(at, Math.min(end, at + 4096));
    s += String.fromCharCode.apply(null, part as unknown as number[]);
  }
  return s;
}

/**
 * Strings met recently, by a hash of their bytes: methods, paths, header
 * names and values repeat from request to request, and a string found here
 * costs no allocation (building one cost ~1 KB of garbage per request).
 * Direct-mapped and fixed in size, so a client cannot make it grow; a
 * collision only costs a miss.
 */
const INTERN_SLOTS = 1024;
const INTERN_MAX = 64;
const interned: string[] = new Array(INTERN_SLOTS).fill("");

/** Decodes bytes [start, end) as Latin-1. */
function text(buf: Uint8Array, start: number, end: number): string {
  const length = end - start;
  if (length > INTERN_MAX) return latin1Long(buf, start, end);
  let hash = length;
  for (let i = start; i < end; i++) hash = (Math.imul(hash, 31) + buf[i]) | 0;
  const slot = (hash ^ (hash >>> 13)) & (INTERN_SLOTS - 1);
  const seen = interned[slot];
  if (seen.length === length) {
    let i = 0;
    while (i < length && seen.charCodeAt(i) === buf[start + i]) i++;
    if (i === length) return seen;
  }
  let s = "";
  for (let i = start; i < end; i++) s += String.fromCharCode(buf[i]);
  interned[slot] = s;
  return s;
}

/** Dotted IPv4 addresses recently seen, by address. */
const ipv4Seen = new Map<number, string>();

function remoteHostname(buf: Uint8Array, at: number, family: number): string {
  if (family === 4) {
    const key = (buf[at] << 24 | buf[at + 1] << 16 | buf[at + 2] << 8 |
      buf[at + 3]) >>> 0;
    let name = ipv4Seen.get(key);
    if (name === undefined) {
      name = `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
      if (ipv4Seen.size >= INTERN_SLOTS) ipv4Seen.clear();
      ipv4Seen.set(key, name);
    }
    return name;
  }
  if (family !== 6) return "";
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) {
    groups.push(((buf[at + i] << 8) | buf[at + i + 1]).toString(16));
  }
  return groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
}

/** The parameters of a request without a route (never written to). */
const NO_PARAMS: readonly string[] = Object.freeze([]);

/**
 * Calls `each` for every request record in `buf[0, length)`, `notice` for
 * every abort or drain record, `body` for every piece of a streaming
 * request body and `message` for every WebSocket message (its opcode, and
 * its payload). Records refer to `buf` only during the call; bodies are
 * copied, messages are views into `buf` valid during their call.
 */
export function decodeRequests(
  buf: Uint8Array,
  view: DataView,
  length: number,
  each: (record: RequestRecord) => void,
  notice: (id: number, gen: number, flag: number) => void,
  body: (id: number, gen: number, data: Uint8Array, end: boolean) => void,
  message?: (id: number, gen: number, opcode: number, data: Uint8Array) => void,
): void {
  let at = 0;
  while (at < length) {
    const size = view.getUint32(at + AT_RECORD_LEN, true);
    const flags = buf[at + AT_FLAGS];
    if (flags & REQF_BODY) {
      const end = at + size - buf[at + AT_BODY_PADDING];
      if (flags & REQF_UPGRADE) {
        // A view, valid during the call: text is decoded at once, and what
        // is kept (binary data) is copied by the socket.
        message?.(
          view.getUint32(at + AT_ID, true),
          view.getUint32(at + AT_GEN, true),
          buf[at + AT_HTTP_MINOR],
          buf.subarray(at + NOTICE_SIZE, end),
        );
        at += size;
        continue;
      }
      body(
        view.getUint32(at + AT_ID, true),
        view.getUint32(at + AT_GEN, true),
        buf.slice(at + NOTICE_SIZE, end),
        (flags & REQF_END) !== 0,
      );
      at += size;
      continue;
    }
    if (flags & (REQF_ABORT | REQF_DRAIN)) {
      notice(
        view.getUint32(at + AT_ID, true),
        view.getUint32(at + AT_GEN, true),
        flags & (REQF_ABORT | REQF_DRAIN),
      );
      at += size;
      continue;
    }
    const methodLen = buf[at + AT_METHOD_LEN];
    const urlLen = view.getUint32(at + AT_URL_LEN, true);
    const nHeaders = view.getUint32(at + AT_N_HEADERS, true);
    const headersLen = view.getUint32(at + AT_HEADERS_LEN, true);
    const bodyLen = view.getUint32(at + AT_BODY_LEN, true);
    let p = at + FIXED_SIZE;
    const method = text(buf, p, p + methodLen);
    p += methodLen;
    const target = text(buf, p, p + urlLen);
    p += urlLen;
    const fields: string[] = [];
    let host = "";
    let cookieAt = -1;
    for (let i = 0; i < nHeaders; i++) {
      const nameLen = view.getUint32(p + AT_FIELD_NAME_LEN, true);
      const valueLen = view.getUint32(p + AT_FIELD_VALUE_LEN, true);
      p += FIELD_SIZE;
      const name = text(buf, p, p + nameLen);
      p += nameLen;
      const value = text(buf, p, p + valueLen);
      p += valueLen;
      if (nameLen === 4 && host === "" && name.toLowerCase() === "host") {
        host = value;
      }
      if (nameLen === 6 && name.toLowerCase() === "cookie") {
        // Several Cookie fields are one list joined with "; " (RFC 9110
        // section 5.3, RFC 6265 section 5.4), not the ", " that Headers
        // would join them with.
        if (cookieAt >= 0) {
          fields[cookieAt] = `${fields[cookieAt]}; ${value}`;
          continue;
        }
        cookieAt = fields.length + 1;
      }
      fields.push(name, value);
    }
    const nParams = buf[at + AT_N_PARAMS];
    let params = NO_PARAMS;
    if (nParams > 0) {
      const values: string[] = [];
      for (let i = 0; i < nParams; i++) {
        const valueLen = view.getUint32(p + AT_FIELD_VALUE_LEN, true);
        p += FIELD_SIZE;
        values.push(text(buf, p, p + valueLen));
        p += valueLen;
      }
      params = values;
    }
    if (p !== at + FIXED_SIZE + methodLen + urlLen + headersLen) {
      throw new Error("Corrupt request record: header block length mismatch");
    }
    each({
      id: view.getUint32(at + AT_ID, true),
      gen: view.getUint32(at + AT_GEN, true),
      httpMinor: buf[at + AT_HTTP_MINOR],
      flags,
      method,
      target,
      fields,
      host,
      body: bodyLen > 0 ? buf.slice(p, p + bodyLen) : null,
      stream: (flags & REQF_STREAM) !== 0,
      remoteHostname: remoteHostname(
        buf,
        at + AT_REMOTE_ADDR,
        buf[at + AT_REMOTE_FAMILY],
      ),
      remotePort: view.getUint16(at + AT_REMOTE_PORT, true),
      route: view.getUint16(at + AT_ROUTE, true),
      params,
    });
    at += size;
  }
}

/** Header fields that ymo writes itself, from what it knows of the body. */
const OWN_HEADERS = new Set([
  "content-length",
  "transfer-encoding",
  "connection",
  "date",
  "keep-alive",
]);

const encoder = new TextEncoder();

/**
 * Writes header fields as "name: value\r\n" lines into a reusable buffer,
 * leaving out the fields ymo sets itself. Headers objects (and so Responses'
 * field lists) have already rejected CR, LF and NUL in names and values.
 * Values are byte strings (RFC 9110 section 5.5, the Fetch standard): each
 * code point up to U+00FF is one byte, as Deno.serve sends it.
 */
export class HeaderWriter {
  #buf = new Uint8Array(4096);
  /** Whether the last write kept the app's Content-Length. */
  keptLength = false;

  /** The buffer of the last write, valid until the next one. */
  get bytes(): Uint8Array {
    return this.#buf;
  }

  /**
   * Encodes `headers` (a Headers object, or a Response's inner field list,
   * whose names may be in any case) with names in lower case, as on both
   * runtimes' Headers, into {@linkcode bytes}.
   *
   * @param headers The fields; iterated twice when a value is wider than
   * a byte, as arrays and Headers objects can be.
   * @param keepLength Keep a Content-Length field (for a HEAD response,
   * whose length is the app's to say).
   * @returns The number of bytes written.
   */
  write(
    headers: Iterable<readonly [string, string]>,
    keepLength = false,
  ): number {
    this.keptLength = false;
    // An array by index: for-of with destructuring cost ~250 B of garbage
    // per response on Deno.
    if (Array.isArray(headers)) {
      const pairs = headers as readonly (readonly [string, string])[];
      let at = 0;
      for (let i = 0; i < pairs.length && at >= 0; i++) {
        at = this.#field(at, pairs[i][0], pairs[i][1], keepLength);
      }
      return at >= 0 ? at : this.#utf8(headers, keepLength);
    }
    let at = 0;
    for (const [name, value] of headers) {
      at = this.#field(at, name, value, keepLength);
      if (at < 0) return this.#utf8(headers, keepLength);
    }
    return at;
  }

  /**
   * Writes one "name: value\r\n" line at `at`, byte by byte (building the
   * block as a string and encoding it cost ~450 B of garbage per response
   * on Deno), the name in lower case. Returns where the next line goes, or
   * -1 for a value wider than a byte (Bun lets such values into Headers):
   * then the whole block goes out as UTF-8 instead.
   */
  #field(at: number, name: string, value: string, keepLength: boolean): number {
    // Only names as long as one of OWN_HEADERS' are looked up there.
    const n = name.length;
    if (
      (n === 4 || n === 10 || n === 14 || n === 17) &&
      this.#dropped(name.toLowerCase(), keepLength)
    ) {
      return at;
    }
    if (at + n + value.length + 4 > this.#buf.length) {
      this.#grow(at + n + value.length + 4);
    }
    const buf = this.#buf;
    for (let i = 0; i < n; i++) {
      const c = name.charCodeAt(i);
      buf[at++] = c >= 65 && c <= 90 ? c + 32 : c;
    }
    buf[at++] = 58; // ":"
    buf[at++] = 32; // " "
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (c > 0xff) return -1;
      buf[at++] = c;
    }
    buf[at++] = 13; // "\r"
    buf[at++] = 10; // "\n"
    return at;
  }

  /** Whether the field `lower` (a lower-case name) is one ymo writes
   * itself; a Content-Length kept for `keepLength` sets keptLength. */
  #dropped(lower: string, keepLength: boolean): boolean {
    if (!OWN_HEADERS.has(lower)) return false;
    if (keepLength && lower === "content-length") {
      this.keptLength = true;
      return false;
    }
    return true;
  }

  #grow(size: number): void {
    const bigger = new Uint8Array(Math.max(size, this.#buf.length * 2));
    bigger.set(this.#buf);
    this.#buf = bigger;
  }

  /** The block as UTF-8, for fields with a code point past U+00FF. */
  #utf8(
    headers: Iterable<readonly [string, string]>,
    keepLength: boolean,
  ): number {
    let s = "";
    this.keptLength = false;
    for (const [field, value] of headers) {
      const name = field.toLowerCase();
      if (!this.#dropped(name, keepLength)) s += `${name}: ${value}\r\n`;
    }
    if (s.length * 3 > this.#buf.length) {
      this.#buf = new Uint8Array(s.length * 3);
    }
    return encoder.encodeInto(s, this.#buf).written;
  }
}
