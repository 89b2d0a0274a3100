/**
 * A shortcut for the costliest step of a small response on Bun: reading a
 * fixed body. Bun keeps a string or bytes body in the Response's native
 * state; reading it through `response.body` makes a ReadableStream and
 * reads it over microtask turns (about 2 us of a 15 us request, measured),
 * while `response.bytes()` hands it over at once (about 0.1 us). But
 * `bytes()` on a body that is a stream reads the whole stream, which would
 * turn a streamed response (server-sent events, a long download) into a
 * buffered one, so it may only be called when the body is not a stream.
 *
 * Bun's memory estimate of a Response (`estimateShallowMemoryUsageOf` from
 * `bun:jsc`) tells which: it is a fixed size plus the bytes of the URL, the
 * status text and a string or bytes body, and it counts nothing for a body
 * that is a stream or a Blob. A Response from `fetch()` (the only kind with
 * a URL) counts its expected length instead, so it is left to the stream
 * path, as is every body the estimate does not count.
 *
 * As in _deno_inner.ts, the assumptions are checked on probes when this
 * module loads, and the shortcut is off if one fails (then every body takes
 * the stream path, as before). tests/bun_inner_test.ts fails if it is off on
 * Bun, so an upgrade that breaks it is noticed, not just slower.
 *
 * @module
 */

// Imported through a variable, as bun:ffi in bun.ts: Deno type-checks this
// file but must not resolve a Bun-only module.
const BUN_JSC = "bun:jsc";

type Estimate = (value: object) => number;

interface BunPeek {
  <T>(promise: Promise<T>): T | Promise<T>;
  status(promise: Promise<unknown>): "pending" | "fulfilled" | "rejected";
}

const peek = (globalThis as unknown as { Bun?: { peek?: BunPeek } }).Bun
  ?.peek;

async function loadEstimate(): Promise<Estimate | undefined> {
  try {
    const jsc = await import(BUN_JSC);
    const estimate = jsc.estimateShallowMemoryUsageOf;
    return typeof estimate === "function" ? estimate : undefined;
  } catch {
    return undefined;
  }
}

/** UTF-8 bytes of a status text (Latin-1 in practice; wider counts double,
 * which only ever sends a body down the stream path). */
function textBytes(text: string): number {
  // deno-lint-ignore no-control-regex
  return /^[\x00-\xff]*$/.test(text) ? text.length : text.length * 2;
}

const estimate = await loadEstimate();
/** The estimate of a Response with no body, URL or status text. */
const EMPTY_SIZE = estimate?.(new Response(null)) ?? 0;

/** The bytes of body the estimate counts for `response`. */
function countedBody(response: Response, estimate: Estimate): number {
  const counted = estimate(response) - EMPTY_SIZE;
  if (counted <= 0) return 0;
  return counted - textBytes(response.statusText);
}

/** Whether the estimate behaves as this module relies on, on probes. */
function probe(estimate: Estimate | undefined): boolean {
  if (estimate === undefined || peek === undefined) return false;
  const stream = () =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(8));
      },
    });
  if (
    countedBody(new Response("probe"), estimate) !== 5 ||
    countedBody(new Response(new Uint8Array(7)), estimate) !== 7 ||
    countedBody(new Response(null, { statusText: "OK" }), estimate) !== 0 ||
    countedBody(new Response(stream()), estimate) !== 0 ||
    countedBody(new Response(stream(), { statusText: "OK" }), estimate) !== 0
  ) return false;
  const bytes = new Response("probe").bytes();
  if (peek.status(bytes) !== "fulfilled") return false;
  const read = peek(bytes) as Uint8Array;
  return read instanceof Uint8Array &&
    new TextDecoder().decode(read) === "probe";
}

const ON = probe(estimate);

/**
 * The body of `response` when it is a string or bytes that nobody has read,
 * else undefined (take the stream path). A promise only if Bun could not
 * hand the bytes over at once, which the probes say does not happen.
 */
export function staticBody(
  response: Response,
): Uint8Array | Promise<Uint8Array> | undefined {
  if (!ON) return undefined;
  if (countedBody(response, estimate!) <= 0) return undefined;
  if (response.url !== "" || response.bodyUsed) return undefined;
  const bytes = response.bytes();
  return peek!.status(bytes) === "fulfilled"
    ? peek!(bytes) as Uint8Array
    : bytes;
}

/** The value of `promise` if it is already fulfilled, else undefined
 * (Bun.peek, which reads a settled promise's state without a microtask). */
export function fulfilled<T>(promise: Promise<T>): T | undefined {
  if (peek === undefined || peek.status(promise) !== "fulfilled") {
    return undefined;
  }
  return peek(promise) as T;
}

/** Whether the fixed-body shortcut is available on this runtime. */
export const hasStaticBody: boolean = ON;
