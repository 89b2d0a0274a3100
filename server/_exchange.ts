/**
 * One request and its response as a handle on the native exchange: respond,
 * append, release, the request body stream fed by C with its acks, the
 * abort signal and the drain wait. What the worker that took it must give
 * it is {@linkcode ExchangeOwner}.
 *
 * @module
 */
import { loadNative } from "../ffi/native.ts";
import type { Pointer } from "../ffi/_types.ts";
import {
  EPIPE,
  ESTALE,
  RESP_CLOSE,
  RESP_DONE,
  RESP_OWN_LENGTH,
} from "../ffi/symbols.ts";

/** What an accepted WebSocket's exchange tells its socket (_websocket.ts). */
export interface SocketEvents {
  /** A message, ping, pong or the client's close (opcode and payload, a
   * view valid during the call). */
  message(opcode: number, data: Uint8Array): void;
  /** Sent bytes drained below the low-water mark. */
  drain(): void;
  /** The connection is gone. */
  gone(): void;
}

const lib = (await loadNative()).fn;

/** WebSocket message bytes acknowledged to C at a time. */
const WS_ACK_STEP = 64 * 1024;

/** An empty body or header block. */
export const EMPTY: Uint8Array = new Uint8Array(0);

/** What an {@linkcode Exchange} needs of the worker that took it. */
export interface ExchangeOwner {
  /** UNSAFE: the native ymo_worker_t, valid while the server lives. */
  readonly pointer: Pointer;
  /** Whether the native worker still exists. */
  readonly alive: boolean;
  /** The exchange `id` is finished: stop tracking it. */
  forget(id: number, exchange: Exchange): void;
  /** `bytes` of a streamed body were handed to C. */
  streamed(bytes: number): void;
  /** UNSAFE: the workers of the server's other loops, which a WebSocket's
   * publish reaches too. */
  readonly otherLoops: readonly Pointer[];
}

/**
 * Publishes a message (opcode 1 text, 2 binary) to `topic`'s subscribers
 * through each of `workers`, one per loop of a server: each loop reaches
 * its own subscribers. Returns the first worker's result: the message's
 * length, or a negative error code.
 */
export function publishOn(
  workers: readonly Pointer[],
  topic: Uint8Array,
  opcode: number,
  data: Uint8Array,
): number {
  let rc = 0;
  for (let i = 0; i < workers.length; i++) {
    const sent: number = lib.ymo_worker_publish(
      workers[i],
      topic,
      topic.byteLength,
      opcode,
      data,
      data.byteLength,
    );
    if (i === 0) rc = sent;
  }
  return rc;
}

function clientGone(): DOMException {
  return new DOMException("The client went away", "AbortError");
}

/**
 * One request and its response, as a handle on the native exchange. The
 * handle is an (id, generation) pair: once the response is finished, or the
 * server is gone, every method is a no-op instead of touching freed memory.
 */
export class Exchange {
  #worker: ExchangeOwner;
  #id: number;
  #gen: number;
  #open = true;
  #aborted = false;
  /** When the handler was given the request (only with handlerTimeout). */
  started = 0;
  /** Whether the request is a HEAD request (set by the worker). */
  isHead = false;
  /** Whether respond() was called (or the WebSocket accepted). */
  responded = false;
  /** Whether the request is a WebSocket opening handshake C checked. */
  upgradable = false;
  /** The accepted WebSocket's events, once accepted. */
  socket: SocketEvents | null = null;
  /** Made on first use of `signal`: most handlers never look at it. */
  #controller: AbortController | null = null;

  /**
   * Wraps the handle of an exchange that `worker` took.
   *
   * @param worker The worker that took the request.
   * @param id The exchange's slot in the worker.
   * @param gen The slot's generation when the request was taken.
   */
  constructor(
    worker: ExchangeOwner,
    id: number,
    gen: number,
    remoteHostname: string,
    remotePort: number,
  ) {
    this.#worker = worker;
    this.#id = id;
    this.#gen = gen;
    this.remoteHostname = remoteHostname;
    this.remotePort = remotePort;
  }

  /** The client's IP address. */
  readonly remoteHostname: string;
  /** The client's port. */
  readonly remotePort: number;

  /** Resolves the completion promise; made with it, on first read. */
  #complete: (() => void) | null = null;
  #completed: Promise<void> | null = null;

  /** Resolves once the response is finished (handed to C whole) or the
   * client is gone; never rejects. */
  get completed(): Promise<void> {
    if (this.#completed === null) {
      if (!this.#open) return Promise.resolve();
      this.#completed = new Promise((resolve) => this.#complete = resolve);
    }
    return this.#completed;
  }

  /** The slot generation that, with the id, names the native exchange. */
  get gen(): number {
    return this.#gen;
  }

  /** Aborted when the client goes away before the response is finished. */
  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(clientGone());
    }
    return this.#controller.signal;
  }

  /**
   * Resolves when the response's unwritten bytes have drained to the
   * low-water mark (or the exchange ended), after an append that returned
   * more than the high-water mark.
   */
  drained(): Promise<void> {
    if (!this.open) return Promise.resolve();
    return new Promise((resolve) => this.#onDrain = resolve);
  }

  #onDrain: (() => void) | null = null;

  /** C told us the response drained (the worker calls this). */
  drain(): void {
    const resolve = this.#onDrain;
    this.#onDrain = null;
    resolve?.();
    this.socket?.drain();
  }

  #body: ReadableStreamDefaultController<Uint8Array> | null = null;
  #bodyUnacked = 0;

  /**
   * The body of a request whose head came before its body: a
   * stream fed by body records, acknowledged to C as it is read, so C stops
   * reading the client while JavaScript does not keep up.
   */
  bodyStream(start: Uint8Array | null): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#body = controller;
        if (start !== null) this.#enqueue(start);
      },
      pull: () => this.#ack(),
      cancel: () => {
        this.#body = null;
        this.#ack();
      },
    }, { highWaterMark: 0 });
  }

  #enqueue(data: Uint8Array): void {
    this.#bodyUnacked += data.byteLength;
    this.#body!.enqueue(data);
  }

  #ack(): void {
    const bytes = this.#bodyUnacked;
    this.#bodyUnacked = 0;
    if (bytes > 0 && this.#worker.alive) {
      lib.ymo_worker_body_ack(this.#worker.pointer, this.#id, this.#gen, bytes);
    }
  }

  /** A piece of the request body arrived (the worker calls this). */
  bodyPiece(data: Uint8Array, end: boolean): void {
    if (this.#body === null) {
      // Nobody reads it (cancelled): let C go on at once.
      this.#bodyUnacked += data.byteLength;
      this.#ack();
      return;
    }
    if (data.byteLength > 0) this.#enqueue(data);
    if (end) {
      this.#body.close();
      this.#body = null;
    }
  }

  /** C told us the client went away (the worker calls this). */
  abort(): void {
    const socket = this.socket;
    if (socket !== null) {
      // A socket's handle is held until now: give it back to C.
      this.socket = null;
      if (this.open) {
        lib.ymo_worker_release(this.#worker.pointer, this.#id, this.#gen);
      }
      this.#finish();
      this.#aborted = true;
      socket.gone();
      return;
    }
    this.drain();
    if (this.#body !== null) {
      this.#body.error(clientGone());
      this.#body = null;
    }
    this.#finish();
    this.#aborted = true;
    this.#controller?.abort(clientGone());
  }

  #finish(): void {
    this.#open = false;
    this.#worker.forget(this.#id, this);
    this.#complete?.();
    this.#complete = null;
  }

  /**
   * Bun's `server.timeout(request, seconds)`: while this exchange is being
   * answered, its connection closes after `seconds` without a byte moving
   * on it (0: never, the default). A no-op once the response is finished.
   */
  setTimeout(seconds: number): void {
    if (!this.open) return;
    lib.ymo_worker_set_timeout(
      this.#worker.pointer,
      this.#id,
      this.#gen,
      Math.round(seconds * 1000),
    );
  }

  /** Whether a response can still be sent (not finished, server alive). */
  get open(): boolean {
    return this.#open && this.#worker.alive;
  }

  /** Whether the client has gone away. */
  get aborted(): boolean {
    if (!this.open) return true;
    return lib.ymo_worker_aborted(this.#worker.pointer, this.#id, this.#gen) !==
      0;
  }

  /**
   * Sends the status, headers and the start of the body in one call. With
   * `done` the body is complete and goes out with Content-Length; without
   * it the rest follows through {@linkcode append}.
   *
   * @param status The status code.
   * @param headers "Name: value\r\n" lines (see `HeaderWriter`).
   * @param headersLength How many bytes of `headers` to send.
   * @param body The body, or its first part.
   * @param done Whether the body is complete.
   * @param ownLength Whether `headers` carry the app's Content-Length for
   * this HEAD request (RFC 9110 section 9.3.2), so that C adds none.
   * @returns 0, or a negative error code when the client is gone.
   */
  respond(
    status: number,
    headers: Uint8Array,
    headersLength: number,
    body: Uint8Array,
    done: boolean,
    ownLength = false,
  ): number {
    if (!this.open) return EPIPE;
    this.responded = true;
    const rc: number = lib.ymo_worker_respond(
      this.#worker.pointer,
      this.#id,
      this.#gen,
      status,
      headers,
      headersLength,
      body,
      body.byteLength,
      (done ? RESP_DONE : 0) | (ownLength ? RESP_OWN_LENGTH : 0),
    );
    if (rc < 0) this.#refused(rc);
    else if (done) this.#finish();
    return rc;
  }

  /**
   * C refused a respond or append. When the client is gone (EPIPE) or the
   * handle is finished (ESTALE), C has let go of it; any other refusal
   * leaves the exchange held, so it is released, for C to answer 500 or
   * close the connection: the client is never left waiting.
   */
  #refused(rc: number): void {
    this.#finish();
    if (rc !== EPIPE && rc !== ESTALE && this.#worker.alive) {
      lib.ymo_worker_release(this.#worker.pointer, this.#id, this.#gen);
    }
  }

  /**
   * Appends to a streamed body.
   *
   * @param chunk The bytes to send.
   * @param done Whether this is the last part.
   * @returns The bytes queued for the client and not yet written, or a
   * negative error code when the client is gone.
   */
  append(chunk: Uint8Array, done: boolean): number {
    if (!this.open) return EPIPE;
    const rc: number = lib.ymo_worker_response_body_append(
      this.#worker.pointer,
      this.#id,
      this.#gen,
      chunk,
      chunk.byteLength,
      done ? RESP_DONE : 0,
    );
    if (rc < 0) this.#refused(rc);
    else {
      this.#worker.streamed(chunk.byteLength);
      if (done) this.#finish();
    }
    return rc;
  }

  /**
   * Answers with ymo's own page for `status` (the reason phrase as plain
   * text), the one C builds for its own errors too.
   *
   * @param status The status code, e.g. 500.
   * @param close Whether to close the connection afterwards.
   */
  respondCanned(status: number, close = false): void {
    if (!this.open) return;
    this.responded = true;
    const rc: number = lib.ymo_worker_respond_canned(
      this.#worker.pointer,
      this.#id,
      this.#gen,
      status,
      close ? RESP_CLOSE : 0,
    );
    if (rc < 0) this.#refused(rc);
    else this.#finish();
  }

  /** A WebSocket message (the worker calls this); acknowledged once the
   * socket has it, so C reads on. */
  wsMessage(opcode: number, data: Uint8Array): void {
    // Acknowledged in 64 KiB steps, not one call per message: C stops
    // reading only past 1 MiB unacknowledged.
    this.#wsUnacked += data.byteLength;
    if (this.#wsUnacked >= WS_ACK_STEP && this.open) {
      lib.ymo_worker_body_ack(
        this.#worker.pointer,
        this.#id,
        this.#gen,
        this.#wsUnacked,
      );
      this.#wsUnacked = 0;
    }
    this.socket?.message(opcode, data);
  }

  #wsUnacked = 0;

  /**
   * Accepts the WebSocket handshake: C sends the 101 with `headers` lines
   * ("Name: value\r\n") and the connection speaks WebSocket from then on,
   * its events going to `socket`.
   *
   * @returns 0, or a negative error code.
   */
  wsAccept(headers: Uint8Array, socket: SocketEvents, flags: number): number {
    if (!this.open) return EPIPE;
    const rc: number = lib.ymo_worker_ws_accept(
      this.#worker.pointer,
      this.#id,
      this.#gen,
      headers,
      headers.byteLength,
      flags,
    );
    if (rc === 0) {
      this.responded = true;
      this.socket = socket;
    } else if (rc === EPIPE || rc === ESTALE) this.#finish();
    return rc;
  }

  /** Sends a WebSocket message; the bytes not yet written, or a negative
   * error code. */
  wsSend(opcode: number, data: Uint8Array, flags: number): number {
    if (!this.open) return EPIPE;
    return lib.ymo_worker_ws_send(
      this.#worker.pointer,
      this.#id,
      this.#gen,
      opcode,
      data,
      data.byteLength,
      flags,
    );
  }

  /** Subscribes (or unsubscribes) the WebSocket to a topic; 0 or a
   * negative error code. */
  wsSubscribe(topic: Uint8Array, subscribe: boolean): number {
    if (!this.open) return EPIPE;
    return lib.ymo_worker_ws_subscribe(
      this.#worker.pointer,
      this.#id,
      this.#gen,
      topic,
      topic.byteLength,
      subscribe ? 1 : 0,
    );
  }

  /** Publishes a message to a topic's subscribers but this socket (unless
   * `flags` says so); its length, or a negative error code. */
  wsPublish(
    topic: Uint8Array,
    opcode: number,
    data: Uint8Array,
    flags: number,
  ): number {
    if (!this.open) return EPIPE;
    const rc: number = lib.ymo_worker_ws_publish(
      this.#worker.pointer,
      this.#id,
      this.#gen,
      topic,
      topic.byteLength,
      opcode,
      data,
      data.byteLength,
      flags,
    );
    // The subscribers on the other loops: this socket is not among them.
    if (rc >= 0) publishOn(this.#worker.otherLoops, topic, opcode, data);
    return rc;
  }

  /** Sends the WebSocket close frame; 0 or a negative error code. */
  wsClose(code: number, reason: Uint8Array): number {
    if (!this.open) return EPIPE;
    return lib.ymo_worker_ws_close(
      this.#worker.pointer,
      this.#id,
      this.#gen,
      code,
      reason,
      reason.byteLength,
    );
  }

  /**
   * Gives up the exchange: a 500 if nothing was sent yet, otherwise the
   * connection is closed (its body is incomplete).
   */
  release(): void {
    if (!this.open) return;
    this.#finish();
    lib.ymo_worker_release(this.#worker.pointer, this.#id, this.#gen);
  }
}
