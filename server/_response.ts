/**
 * Sending a handler's Response through its exchange: the header block, a
 * fixed body in one call, a stream read ahead while it is ready at once and
 * then appended chunk by chunk with backpressure, and the error path
 * (`onError`, or the default 500) when the handler failed.
 *
 * @module
 */
import { loadNative } from "../ffi/native.ts";
import { HeaderWriter, RESP_HIGH_WATER } from "../ffi/codec.ts";
import { EMPTY, type Exchange } from "./_exchange.ts";
import { sendUpgrade } from "./_websocket.ts";

const { headerList, staticBody, bodySent, fulfilled, turn } =
  await loadNative();

const encoder = new TextEncoder();

/** What a {@linkcode Responder} needs of the app. */
export interface ResponderHost {
  /** Turns a handler error into a response; without it ymo logs the error
   * and answers with its own 500 page. */
  onError?(error: unknown): Response | Promise<Response>;
}

/**
 * Sends Responses for one worker, with buffers reused from one response to
 * the next (the header block, the UTF-8 of a fixed string body).
 */
export class Responder {
  #host: ResponderHost;
  #headerWriter = new HeaderWriter();
  #scratch = new Uint8Array(16 * 1024);

  /**
   * Makes the responder of a worker.
   *
   * @param host Whose `onError` answers a failed handler.
   */
  constructor(host: ResponderHost) {
    this.#host = host;
  }

  /** The last long string body, and its UTF-8 once it came twice (see
   * #encode). */
  #lastText = "";
  #lastBytes: Uint8Array = EMPTY;

  /**
   * UTF-8 of `text`, valid until the next call. A long body that is the
   * same string as the last one (a constant an app returns for every
   * request) reuses its bytes: comparing costs far less than encoding,
   * which for a 16 KiB string with non-ASCII characters takes ~13 us on
   * Deno's TextEncoder.
   */
  #encode(text: string): Uint8Array {
    const long = text.length >= ENCODE_CACHE_MIN;
    const again = long && text === this.#lastText;
    if (again && this.#lastBytes !== EMPTY) return this.#lastBytes;
    if (text.length * 3 > this.#scratch.byteLength) {
      this.#scratch = new Uint8Array(text.length * 3);
    }
    const { written } = encoder.encodeInto(text, this.#scratch);
    const bytes = this.#scratch.subarray(0, written);
    if (!long) return bytes;
    // Kept from the second time on: a body made fresh for each response
    // (JSON.stringify) costs no copy.
    this.#lastText = text;
    this.#lastBytes = again ? bytes.slice() : EMPTY;
    return bytes;
  }

  /**
   * Answers for a handler that threw or rejected, or whose Response cannot
   * be sent: `onError`'s response, or a 500. Never rejects.
   */
  async fail(exchange: Exchange, error: unknown): Promise<void> {
    const onError = this.#host.onError;
    if (onError === undefined) {
      console.error("ymo: handler failed:", error);
      exchange.respondCanned(500);
      return;
    }
    let response: unknown;
    try {
      response = await onError(error);
    } catch (second) {
      console.error("ymo: onError threw:", second);
      exchange.respondCanned(500);
      return;
    }
    await this.send(exchange, response, true);
  }

  /**
   * Sends `response`; returns a promise only when its body is a stream (or
   * it cannot be sent and `onError` answers instead), so fixed bodies cost
   * no promise. Never throws, and the promise never rejects: whatever the
   * handler returned, the client gets an answer. `failed` is set for the
   * response of `onError`, which gets no second chance: C answers 500.
   */
  send(
    exchange: Exchange,
    response: unknown,
    failed = false,
  ): Promise<void> | undefined {
    let status: number;
    let head: Uint8Array, headLength: number;
    let fixed: string | Uint8Array | Promise<Uint8Array> | undefined;
    let body: ReadableStream<unknown> | null = null;
    let ownLength = false;
    try {
      if (response instanceof Response && sendUpgrade(exchange, response)) {
        return;
      }
      if (!(response instanceof Response)) {
        throw new TypeError(
          `${failed ? "onError" : "Handler"} must return a Response, not ${
            Object.prototype.toString.call(response)
          }`,
        );
      }
      status = response.status;
      if (!(status >= 200 && status <= 999)) {
        throw new RangeError(
          status === 0
            ? "Cannot send Response.error() (status 0) as a response"
            : status === 101
            ? 'Cannot send a 101 response that ymo did not make: on ymo, accept WebSockets with upgradeWebSocket() from ymo (import { upgradeWebSocket } from "@ymo/ymo"), not Deno.upgradeWebSocket(), or with server.upgrade()'
            : `Cannot send a Response with status ${status}: only final statuses (200-999) are sent`,
        );
      }
      // Read the headers before touching the body: Bun drops a Blob body's
      // implied Content-Type once `body` is read.
      headLength = this.#headerWriter.write(
        headerList(response) ?? response.headers,
        exchange.isHead,
      );
      head = this.#headerWriter.bytes;
      // A HEAD answer keeps the Content-Length the app set, if any (RFC
      // 9110 section 9.3.2): C then adds none.
      ownLength = this.#headerWriter.keptLength;
      fixed = staticBody(response);
      if (fixed === undefined) {
        body = response.body;
        if (body !== null && (response.bodyUsed || body.locked)) {
          throw new TypeError(
            "Cannot send a Response whose body is already used or locked",
          );
        }
      }
    } catch (error) {
      return this.#unsendable(exchange, error, failed);
    }
    if (fixed instanceof Promise) {
      return this.#sendLater(
        exchange,
        status,
        head.slice(0, headLength),
        fixed,
        failed,
        ownLength,
      );
    }
    if (fixed !== undefined) {
      const bytes = typeof fixed === "string" ? this.#encode(fixed) : fixed;
      exchange.respond(status, head, headLength, bytes, true, ownLength);
      bodySent(response as Response, fixed);
      return;
    }
    if (body === null) {
      exchange.respond(status, head, headLength, EMPTY, true, ownLength);
      return;
    }
    // Copied: the writer's buffer is reused by other exchanges while this
    // one awaits its body.
    return this.#sendStream(
      exchange,
      status,
      head.slice(0, headLength),
      body,
      failed,
      ownLength,
    );
  }

  /** A response that cannot be sent, before anything was: `onError`
   * answers, or for `onError`'s own response, C's 500. */
  #unsendable(
    exchange: Exchange,
    error: unknown,
    failed: boolean,
  ): Promise<void> | undefined {
    if (!failed) return this.fail(exchange, error);
    console.error("ymo: onError's response cannot be sent:", error);
    exchange.respondCanned(500);
  }

  /** Sends a fixed body the runtime hands over later. */
  async #sendLater(
    exchange: Exchange,
    status: number,
    headers: Uint8Array,
    body: Promise<Uint8Array>,
    failed: boolean,
    ownLength: boolean,
  ): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = await body;
    } catch (error) {
      return this.#unsendable(exchange, error, failed);
    }
    exchange.respond(
      status,
      headers,
      headers.byteLength,
      bytes,
      true,
      ownLength,
    );
  }

  async #sendStream(
    exchange: Exchange,
    status: number,
    headers: Uint8Array,
    body: ReadableStream<unknown>,
    failed: boolean,
    ownLength: boolean,
  ): Promise<void> {
    const headLength = headers.byteLength;
    let reader: ReadableStreamDefaultReader<unknown>;
    try {
      reader = body.getReader();
    } catch (error) {
      return this.#unsendable(exchange, error, failed);
    }
    try {
      // Read ahead while chunks are ready at once: a body that ends that way
      // (a string, bytes, a Blob) is sent whole with a Content-Length; one
      // that must wait (a real stream) is sent chunked from there on.
      const parts: Uint8Array[] = [];
      let size = 0;
      let chunk: ReadResult = await reader.read();
      let later: Promise<ReadResult> | null = null;
      while (!chunk.done && size < READ_AHEAD_LIMIT) {
        const bytes = toBytes(chunk.value);
        parts.push(bytes);
        size += bytes.byteLength;
        const next = await readSoon(reader);
        if ("later" in next) {
          later = next.later;
          break;
        }
        chunk = next.ready;
      }
      if (chunk.done) {
        // Whole within the read-ahead: one piece, with a Content-Length.
        const body = parts.length === 1 ? parts[0] : concat(parts, size);
        exchange.respond(status, headers, headLength, body, true, ownLength);
        return;
      }
      // Streamed: the parts go as they are (C copies each anyway), not
      // joined into one more buffer first.
      let sent = exchange.respond(
        status,
        headers,
        headLength,
        parts.length > 0 ? parts[0] : EMPTY,
        false,
      );
      for (let i = 1; i < parts.length && sent >= 0; i++) {
        sent = exchange.append(parts[i], false);
      }
      // C has copied them: they need not live as long as the response (a
      // live set the size of every stream's read-ahead makes the engine's
      // young generation, and the garbage between collections, that much
      // larger).
      parts.length = 0;
      if (sent < 0) {
        reader.cancel().catch(() => {});
        return;
      }
      // Either the pending read, or the chunk that hit the read-ahead limit
      // and is not sent yet.
      if (later !== null) chunk = await later;
      // Bytes sent since the event loop last turned for this stream.
      let unbroken = 0;
      while (!chunk.done) {
        const bytes = toBytes(chunk.value);
        const pending = exchange.append(bytes, false);
        if (pending < 0) {
          reader.cancel().catch(() => {});
          return;
        }
        chunk = COPIED;
        if (pending > RESP_HIGH_WATER) {
          // A slow client: stop pulling from the body until C has written
          // most of what it holds, so memory stays bounded; the chunk C
          // copied is let go meanwhile.
          await exchange.drained();
          unbroken = 0;
        } else if ((unbroken += bytes.byteLength) >= STREAM_TURN_BYTES) {
          // The socket takes all (C writes at the high-water mark while
          // this thread holds the loop) and the chunks come through
          // microtasks: let timers, I/O and other requests have a turn.
          await turn();
          unbroken = 0;
        }
        // A chunk the stream has at once is taken at once where the runtime
        // can tell (Bun), not a microtask later, after every other stream's
        // turn: fewer chunks are alive at each young collection, and the
        // app's next ones land on pages still in use (stream at 256
        // connections on Bun: 559-794 µs per response against 568-928
        // without, better in 10 of 11 interleaved rounds).
        const next = reader.read();
        chunk = fulfilled(next) ?? await next;
      }
      exchange.append(EMPTY, true);
    } catch (error) {
      reader.cancel(error).catch(() => {});
      if (!exchange.responded) {
        // Nothing was sent: the failure is answered like a handler's.
        await this.#unsendable(exchange, error, failed);
      } else if (exchange.open) {
        // The body failed part way: the connection must be closed, since
        // the client cannot tell a cut body from a whole one otherwise.
        console.error("ymo: response body stream failed:", error);
        exchange.release();
      }
    }
  }
}

/** String bodies from this length on are kept encoded for the next
 * response (#encode); shorter ones encode faster than they compare. */
const ENCODE_CACHE_MIN = 1024;

/** Bytes a stream sends with nothing to wait for before it lets the event
 * loop turn (several times a typical download's size, a few ms). */
const STREAM_TURN_BYTES = 4 * 1024 * 1024;

/** Bytes a response may gather before its head goes out anyway. */
const READ_AHEAD_LIMIT = 64 * 1024;
/** Microtask turns a read may take and still count as ready at once. */
const READY_TURNS = 8;

type ReadResult = ReadableStreamReadResult<unknown>;

/** Stands for a chunk already handed to C. */
const COPIED: ReadResult = { done: false, value: undefined };

/**
 * Reads the next chunk: `ready` when the stream had it within a few microtask
 * turns, else `later`, the still-pending read.
 */
async function readSoon(
  reader: ReadableStreamDefaultReader<unknown>,
): Promise<{ ready: ReadResult } | { later: Promise<ReadResult> }> {
  let result: ReadResult | null = null;
  const later = reader.read();
  later.then((r) => result = r, () => {});
  for (let i = 0; i < READY_TURNS && result === null; i++) await null;
  return result !== null ? { ready: result } : { later };
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 0) return EMPTY;
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === "string") return encoder.encode(chunk);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) {
    return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  throw new TypeError(
    `Response body chunks must be bytes (Uint8Array) or strings, not ${
      chunk === null ? "null" : typeof chunk
    }`,
  );
}
