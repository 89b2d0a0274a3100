/**
 * Building the standard Request a handler gets from a request record: its
 * URL, method, header fields and body (whole, or a stream fed by the
 * exchange), the Deno.serve way when the backend offers it, and a `signal`
 * made only when read.
 *
 * @module
 */
import { loadNative } from "../ffi/native.ts";
import type { RequestRecord } from "../ffi/codec.ts";
import type { Exchange } from "./_exchange.ts";

const { fastRequest } = await loadNative();

/**
 * The Request handed to handlers: a standard Request whose `signal` comes
 * from the exchange, made only when read. Passing a signal to the Request
 * constructor costs more than the rest of the request (Deno links a
 * dependent signal), and most handlers never read it.
 */
class ServerRequest extends Request {
  #exchange: Exchange;

  /** `input` is a URL, or on Deno the brand that makes an empty Request
   * for `fastRequest.fill()`. */
  constructor(
    input: string | symbol,
    init: RequestInit | undefined,
    exchange: Exchange,
  ) {
    super(input as string, init);
    this.#exchange = exchange;
  }

  /** Aborted when the client goes away before the response is sent. */
  override get signal(): AbortSignal {
    return this.#exchange.signal;
  }

  /** The exchange of `request` if ymo made it, else undefined. */
  static exchangeOf(request: Request): Exchange | undefined {
    return #exchange in request
      ? (request as ServerRequest).#exchange
      : undefined;
  }
}

/** The exchange behind a Request that ymo handed to a handler, if it is
 * one (for Bun's `server.requestIP(request)`). */
export function exchangeOf(request: Request): Exchange | undefined {
  return ServerRequest.exchangeOf(request);
}

/** Builds the standard Request for a record. */
export function buildRequest(
  rec: RequestRecord,
  exchange: Exchange,
  defaultHost: string,
  secure = false,
): Request {
  const host = rec.host === "" ? defaultHost : rec.host;
  const target = rec.target;
  const origin = secure ? "https://" : "http://";
  const url = target.charCodeAt(0) === 47 /* "/" */
    ? `${origin}${host}${target}`
    : target === "*"
    ? `${origin}${host}/`
    : target;
  const method = rec.method;
  const hasBody = method !== "GET" && method !== "HEAD";
  let body: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null = rec
    .body as Uint8Array<ArrayBuffer> | null;
  if (rec.stream) {
    body = exchange.bodyStream(rec.body);
    // GET and HEAD may not have a body in a Request: theirs is read and
    // dropped, which also keeps the connection moving.
    if (!hasBody) body.cancel();
  }
  if (!hasBody) body = null;
  if (fastRequest !== undefined) {
    // The URL is parsed and serialized as the constructor would (it throws
    // on one the platform refuses); C's parser already checked the method
    // and the fields. Like Deno.serve and Bun, this passes TRACE to the
    // handler, where Deno's constructor refuses it.
    const href = isCanonical(host, target, secure) ? url : new URL(url).href;
    const request = new ServerRequest(fastRequest.brand, undefined, exchange);
    fastRequest.fill(request, method, href, rec.fields, body);
    return request;
  }
  // The fields are appended rather than given in the init: on Bun a GET
  // then costs half as much (293 ns against 534 with one field), a POST
  // with a body and three fields 750 ns against 860 (Deno: 5.1 us against
  // 5.5). A body and `duplex` only where there is one: on Bun they cost
  // about 0.5 µs even when null.
  const request = new ServerRequest(
    url,
    body !== null
      ? { method, body, duplex: "half" } as RequestInit
      : method === "GET"
      ? undefined
      : { method },
    exchange,
  );
  const headers = request.headers;
  const fields = rec.fields;
  for (let i = 0; i < fields.length; i += 2) {
    headers.append(fields[i], fields[i + 1]);
  }
  return request;
}

/** A host the URL parser leaves as it is: lower-case names whose labels
 * start with a letter (so none is read as a number), or a dotted-quad IPv4
 * address without leading zeros; then a port without leading zeros. */
const CANONICAL_HOST =
  /^(?:[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)*|(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))(?::([1-9]\d{0,4}))?$/;
/** An origin-form target the URL parser leaves as it is: characters it
 * neither encodes nor decodes, and no dot segment ("/." or "/%2e" starts
 * every one) for it to resolve. */
const CANONICAL_TARGET = /^\/[A-Za-z0-9\-._~!$&()*+,;=:@/?%]*$/;
const DOT_SEGMENT = /\/(?:\.|%2e)/i;

/**
 * Whether `http://${host}${target}` (https with `secure`) is already what
 * `new URL()` would make of it, so parsing it (about 0.4 µs of a small request on Deno, in
 * perf profiles) can be skipped. Anything unusual says no and gets parsed.
 */
export function isCanonical(
  host: string,
  target: string,
  secure = false,
): boolean {
  const match = CANONICAL_HOST.exec(host);
  // Punycode labels ("xn--") are checked by the parser, which may refuse.
  if (match === null || host.includes("xn--")) return false;
  const port = match[1];
  // The default port is dropped by the parser; past 65535 it throws.
  if (
    port !== undefined &&
    (port === (secure ? "443" : "80") || Number(port) > 65535)
  ) {
    return false;
  }
  return CANONICAL_TARGET.test(target) && !DOT_SEGMENT.test(target);
}
