/**
 * The JavaScript half of a native worker: {@linkcode ThreadWorker} takes
 * batches of request records from C on this thread, makes an exchange and a
 * Request for each, runs the handler and hands the result to the responder;
 * it routes abort, drain and body notices to their exchanges and answers
 * 503 past `handlerTimeout`. How the thread is woken is the backend's waker.
 *
 * @module
 */
import { loadNative } from "../ffi/native.ts";
import {
  decodeRequests,
  REQF_ABORT,
  REQF_HEAD,
  REQF_UPGRADE,
  type RequestRecord,
} from "../ffi/codec.ts";
import type { Pointer, Timer, Waker } from "../ffi/_types.ts";
import { EAGAIN, EALREADY } from "../ffi/symbols.ts";
import { check } from "./_errors.ts";
import type { ServeHandler, SocketAddress } from "./_options.ts";
import { HandlerInfo, type ServerFacade, socketAddress } from "./_info.ts";
import { Exchange, type ExchangeOwner } from "./_exchange.ts";
import { buildRequest, exchangeOf } from "./_request.ts";
import { Responder } from "./_response.ts";
import type { RouteTable } from "./_routes.ts";
import {
  publishThrough,
  upgradeRequest,
  type WebSocketHandler,
} from "./_bun_websocket.ts";

const native = await loadNative();
const lib = native.fn;

/** The answer for a request that no handler takes (Bun's, without fetch). */
function notFound(): Response {
  return new Response(null, { status: 404 });
}

/** Milliseconds without work after which a busy period ends and the loop
 * goes back to L. */
const LOAN_IDLE_MS = 1;
/** How long one drain may go on taking before the runtime's loop gets a
 * turn (timers, awaiting handlers, I/O): under a load that queues requests
 * as fast as synchronous handlers answer them, "until the queue is empty"
 * never came, and everything else on this thread waited for as long. */
const DRAIN_BUDGET_MS = 4;
/** While this thread holds the loop, answers made during a drain are
 * written at least this often (handlers that take a while each). */
const DRAIN_FLUSH_MS = 1;
/** Streamed bytes after which a thread holding the loop writes them out
 * without waiting for its next pass (see ThreadWorker.streamed): this much
 * per request in progress, within these bounds. */
const STREAM_FLUSH_PER_RESPONSE = 32 * 1024;
const STREAM_FLUSH_MIN = 256 * 1024;
const STREAM_FLUSH_MAX = 8 * 1024 * 1024;

/**
 * What a {@linkcode ThreadWorker} needs from its owner (the server, or a
 * worker thread's entry): the app and the address.
 */
export interface WorkerHost {
  /** The request handler; without one (routes alone, or the main thread
   * of a server with workers), what reaches it is not found. */
  readonly handler?: ServeHandler;
  /** Turns a handler error into a response; without it ymo logs the error
   * and answers with its own 500 page. */
  onError?(error: unknown): Response | Promise<Response>;
  /** "host:port" for the URL of a request that has no Host header. */
  readonly defaultHost: string;
  /** Whether the server is shutting down. */
  readonly stopping: boolean;
  /** Milliseconds before an unanswered request gets 503, if set. */
  readonly handlerTimeout?: number;
  /** The `routes` option compiled, whose numbers C's records carry. */
  readonly routes?: RouteTable;
  /** Bun's WebSocket handlers, for `server.upgrade()`. */
  readonly websocket?: WebSocketHandler;
  /** The server's URL (href), port and address, for the handler's second
   * argument. */
  readonly url: string;
  readonly port: number;
  readonly hostname: string;
  /** Stops the server (Bun's `server.stop()` from a handler). */
  stop(closeActiveConnections?: boolean): Promise<void>;
}

/**
 * A native worker driven by this JavaScript thread: it takes batches of
 * requests from C, runs the handler on each, and hands responses back.
 */
export class ThreadWorker implements ExchangeOwner {
  #pointer: Pointer;
  #server: WorkerHost;
  /** Whether the server speaks TLS: request URLs are https. */
  #secure: boolean;
  #buf = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buf.buffer);
  #waker: Waker | null = null;
  #alive = true;
  #stopped: Promise<void>;
  #resolveStopped!: () => void;
  #responder: Responder;
  #sweep: Timer | undefined;

  /** Exchanges taken and not finished, by slot id (C reuses low ids), for
   * the notices and body pieces that name them. */
  #inflight: (Exchange | undefined)[] = [];

  /**
   * Wraps a native worker; {@linkcode ThreadWorker.start} makes this thread
   * drive it.
   *
   * @param server What the worker serves: the app, and the address.
   * @param pointer The native ymo_worker_t.
   * @param otherLoops The workers of the server's other loops (with
   * `workers`, one per thread), which this thread's publishes reach too.
   */
  constructor(
    server: WorkerHost,
    pointer: Pointer,
    otherLoops: Pointer[] = [],
  ) {
    this.#server = server;
    this.otherLoops = otherLoops;
    this.#publishTo = [pointer, ...otherLoops];
    this.#secure = server.url.startsWith("https:");
    this.#pointer = pointer;
    this.#responder = new Responder(server);
    this.#stopped = new Promise((resolve) => this.#resolveStopped = resolve);
  }

  /** UNSAFE: the workers of the server's other loops. */
  readonly otherLoops: readonly Pointer[];
  /** This worker, then otherLoops: one worker per loop of the server. */
  readonly #publishTo: readonly Pointer[];

  /** UNSAFE: the native ymo_worker_t, valid while the server lives. */
  get pointer(): Pointer {
    return this.#pointer;
  }

  /** Whether the native worker still exists. */
  get alive(): boolean {
    return this.#alive;
  }

  /** Resolves when C has released this worker for good. */
  get stopped(): Promise<void> {
    return this.#stopped;
  }

  /** Answers 503 for requests whose handler ran past handlerTimeout. */
  #sweepTimeouts(timeout: number): void {
    const now = performance.now();
    for (const exchange of this.#inflight) {
      if (
        exchange === undefined || exchange.responded ||
        now - exchange.started < timeout
      ) continue;
      exchange.respondCanned(503);
      exchange.abort();
    }
  }

  /** Starts taking requests on this thread. */
  start(): void {
    const timeout = this.#server.handlerTimeout;
    if (timeout !== undefined) {
      // One sweep a quarter of the timeout, not a timer per request.
      this.#sweep = setInterval(
        () => this.#sweepTimeouts(timeout),
        Math.max(10, timeout / 4),
      );
      native.unrefTimer(this.#sweep);
    }
    check(lib.ymo_worker_start(this.#pointer), "Cannot start worker");
    this.#waker = native.waker(
      this.#pointer,
      () => this.#work(),
      () => this.#onReleased(),
      () => this.#server.stopping,
    );
  }

  /** Lets the process exit while only this worker waits. */
  unref(): void {
    this.#waker?.unref();
  }

  /** Undoes {@linkcode unref}. */
  ref(): void {
    this.#waker?.ref();
  }

  #onReleased(): void {
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#sweep = undefined;
    this.#resolveStopped();
  }

  /**
   * Lets go of the native worker from this thread for good: C answers the
   * requests this thread holds with 503 and stops waking it. For a thread
   * that is about to die.
   */
  detach(): void {
    if (!this.#alive) return;
    lib.ymo_worker_join(this.#pointer);
    this.#onReleased();
    this.close();
  }

  /** Closes what this worker owns; only after C has released it. */
  close(): void {
    this.#alive = false;
    // Producers waiting for a drain that will never come can end now.
    for (const exchange of this.#inflight) exchange?.drain();
    this.#inflight = [];
    this.#pending = 0;
    // The server is stopped and joined: C calls the waker no more.
    this.#waker?.close();
  }

  /** Whether this thread holds the loop (inside a busy period). */
  #owned = false;
  /** Streamed-body bytes appended since the loop last ran here. */
  #streamedSincePass = 0;

  /**
   * A streamed body's bytes went to C. While this thread holds the loop,
   * many streams appending in one turn of the runtime's loop (256 streams
   * of 64 KiB each before they wait for a drain: 16 MiB, ~10 ms) would
   * keep their bytes from the sockets until the turn ends, and L would take
   * the loop back meanwhile (a pass every YMO__LOAN_STUCK_MS), waking on
   * every event on the same cores. Writing as they go keeps the sockets
   * fed and the loop here. The streams take turns chunk by chunk (each read
   * is a promise), so a flush finds about the flushed amount over the
   * streams in progress for each connection: a fixed 256 KiB wrote one
   * 16 KiB chunk per connection at 256 streams, a TCP segment each (~85 per
   * 1 MiB response, against Bun.serve's ~48). Scaled with the requests in
   * progress (#pending), a flush writes ~32 KiB or more per connection (~50
   * segments per response), at most STREAM_FLUSH_MAX (~5 ms of appending).
   */
  streamed(bytes: number): void {
    if (!this.#owned) return;
    this.#streamedSincePass += bytes;
    const limit = Math.min(
      Math.max(this.#pending * STREAM_FLUSH_PER_RESPONSE, STREAM_FLUSH_MIN),
      STREAM_FLUSH_MAX,
    );
    if (this.#streamedSincePass >= limit) this.#flushNow();
  }

  /** When this thread last ran the loop (a pass or a flush). */
  #flushed = 0;

  /** The loop just ran on this thread: what was queued is written. */
  #ranLoop(): void {
    this.#streamedSincePass = 0;
    this.#flushed = performance.now();
  }

  /** Writes what is queued now, from this thread, which holds the loop. */
  #flushNow(): void {
    this.#ranLoop();
    if (lib.ymo_worker_flush(this.#pointer) === EAGAIN) this.#owned = false;
  }

  /** Whether this server lends its loop (C says no once, for good). */
  #lends = true;
  /** The busy period running, if one is. */
  #busy: Promise<void> | null = null;

  /** C has queued work: take it, and while busy, run the loop here. */
  #work(): Promise<void> | undefined {
    if (!this.#lends) {
      this.#drain();
      return;
    }
    // Started a microtask later: the period clears #busy when it ends,
    // which must come after this assignment.
    return this.#busy ??= Promise.resolve().then(() => this.#busyPeriod());
  }

  /**
   * One busy period (native/src/loan.c): borrow the loop from L and run it
   * on this thread between batches, so reading, handling and writing a
   * request need no wake and no other thread; between passes, one turn of
   * the runtime's event loop lets timers, I/O and awaiting handlers go on.
   * After LOAN_IDLE_MS without work the loop goes back to L, which waits
   * for the next request in epoll and wakes this thread through the waker.
   */
  async #busyPeriod(): Promise<void> {
    const pointer = this.#pointer;
    try {
      let lastWork = performance.now();
      let idle = false;
      this.#drain();
      while (this.#alive && !this.#server.stopping) {
        if (!this.#owned) {
          const rc: number = lib.ymo_worker_acquire_loop(pointer);
          if (rc < 0) {
            // EALREADY: this server keeps the handoff (several workers).
            if (rc === EALREADY) this.#lends = false;
            break;
          }
          this.#owned = rc === 1;
        }
        // Nothing found last time and no handler waiting on anything:
        // sleep in epoll until a request comes, rather than spin through
        // empty passes and turns of the runtime's loop (its timers and I/O
        // wait meanwhile, LOAN_IDLE_MS at most).
        const nap = idle && this.#pending === 0;
        let worked = false;
        if (this.#owned) {
          const n: number = nap
            ? lib.ymo_worker_nap(pointer, LOAN_IDLE_MS * 1000)
            : lib.ymo_worker_poll(pointer);
          if (n === EAGAIN) this.#owned = false; // L took it back: ask again.
          else if (n < 0) break; // Shutting down: L finishes it.
          else if (n > 0) {
            worked = this.#drain();
            // Write what the batch answered now, not after the turn.
            lib.ymo_worker_flush(pointer);
          }
        }
        this.#ranLoop();
        // Not (yet) ours: take what L handed over meanwhile.
        if (!this.#owned) worked = this.#drain();
        const now = performance.now();
        idle = !worked;
        if (worked) lastWork = now;
        else if (now - lastWork > LOAN_IDLE_MS) break;
        await native.turn();
      }
    } finally {
      this.#owned = false;
      lib.ymo_worker_release_loop(pointer);
      this.#busy = null;
    }
    // What was queued between the last take and the release woke nobody.
    this.#drain();
  }

  /** Whether the last drain stopped at DRAIN_BUDGET_MS with work left. */
  #drainCut = false;
  #resumeScheduled = false;

  /** Comes back for what a cut drain left, after a turn of the runtime's
   * loop. */
  #resumeSoon(): void {
    if (this.#resumeScheduled) return;
    this.#resumeScheduled = true;
    native.turn().then(() => {
      this.#resumeScheduled = false;
      this.#work();
    });
  }

  /**
   * Takes what C has queued, until nothing is left or DRAIN_BUDGET_MS have
   * gone by (then #drainCut is set); whether it took any. The responses
   * made meanwhile reach L together, at the batch's end.
   */
  #drain(): boolean {
    if (!this.#alive) return false;
    lib.ymo_worker_begin_batch(this.#pointer);
    let took: boolean;
    try {
      took = this.#takeAll();
    } finally {
      if (this.#alive) lib.ymo_worker_end_batch(this.#pointer);
    }
    // A busy period comes back by itself; outside one, C wakes this thread
    // only when its queue goes from empty to not, so the rest of a cut
    // drain is ours to come back for.
    if (this.#drainCut && this.#busy === null) this.#resumeSoon();
    return took;
  }

  #takeAll(): boolean {
    let took = false;
    this.#drainCut = false;
    const start = performance.now();
    for (;;) {
      if (took && performance.now() - start >= DRAIN_BUDGET_MS) {
        this.#drainCut = true;
        return took;
      }
      const n: number = lib.ymo_worker_take(
        this.#pointer,
        this.#buf,
        this.#buf.byteLength,
      );
      if (n === 0) return took;
      took = true;
      if (n < 0) {
        let size = this.#buf.byteLength * 2;
        while (size < -n) size *= 2;
        this.#buf = new Uint8Array(size);
        this.#view = new DataView(this.#buf.buffer);
        continue;
      }
      decodeRequests(
        this.#buf,
        this.#view,
        n,
        (rec) => {
          this.#handle(rec);
          // Slow handlers: what they answered goes out every
          // DRAIN_FLUSH_MS, not at the end of the take.
          if (
            this.#owned && performance.now() - this.#flushed >= DRAIN_FLUSH_MS
          ) {
            this.#flushNow();
          }
        },
        (id, gen, flag) => {
          const exchange = this.#inflight[id];
          if (exchange === undefined || exchange.gen !== gen) return;
          if (flag === REQF_ABORT) exchange.abort();
          else exchange.drain();
        },
        (id, gen, data, end) => {
          const exchange = this.#inflight[id];
          if (exchange !== undefined && exchange.gen === gen) {
            exchange.bodyPiece(data, end);
          }
        },
        (id, gen, opcode, data) => {
          const exchange = this.#inflight[id];
          if (exchange !== undefined && exchange.gen === gen) {
            exchange.wsMessage(opcode, data);
          }
        },
      );
    }
  }

  /** An exchange is finished: stop tracking it (the exchange calls this). */
  forget(id: number, exchange: Exchange): void {
    if (this.#inflight[id] === exchange) {
      this.#inflight[id] = undefined;
      this.#pending--;
    }
  }

  #pending = 0;

  /** Requests taken and not yet answered on this thread. */
  get pending(): number {
    return this.#pending;
  }

  /** The server as handlers see it in their second argument. */
  #facade: ServerFacade | undefined;

  #makeFacade(): ServerFacade {
    const host = this.#server;
    const url = new URL(host.url);
    const pending = () => this.pending;
    return {
      url,
      port: host.port,
      hostname: host.hostname,
      get pendingRequests() {
        return pending();
      },
      stop: (closeActive) => host.stop(closeActive),
      upgrade: (request, options) =>
        upgradeRequest(request, host.websocket, options),
      publish: (topic, data) =>
        host.stopping ? 0 : publishThrough(this.#publishTo, topic, data),
      requestIP(request: Request): SocketAddress | null {
        const exchange = exchangeOf(request);
        return exchange === undefined ? null : socketAddress(exchange);
      },
      exchangeOf,
    };
  }

  #handle(rec: RequestRecord): void {
    const exchange = new Exchange(
      this,
      rec.id,
      rec.gen,
      rec.remoteHostname,
      rec.remotePort,
    );
    if (this.#sweep !== undefined) exchange.started = performance.now();
    this.#inflight[rec.id] = exchange;
    this.#pending++;
    exchange.isHead = (rec.flags & REQF_HEAD) !== 0;
    exchange.upgradable = (rec.flags & REQF_UPGRADE) !== 0;
    let request: Request;
    try {
      request = buildRequest(
        rec,
        exchange,
        this.#server.defaultHost,
        this.#secure,
      );
    } catch {
      // An URL or header the platform's Request refuses: the client's fault.
      exchange.respondCanned(400, true);
      return;
    }
    let handler = this.#server.handler ?? notFound;
    if (rec.route !== 0) {
      // A route C matched: its handler, or `fetch` for a `false` route.
      const routes = this.#server.routes!;
      const entry = routes.entries[rec.route - 1];
      if (entry.handler !== null) {
        handler = entry.handler as ServeHandler;
        (request as Request & { params: Record<string, string> }).params =
          routes.params(rec.route - 1, rec.params);
      }
    }
    const info = new HandlerInfo(
      exchange,
      this.#facade ??= this.#makeFacade(),
    );
    let result: unknown;
    try {
      result = handler(request, info);
      if (result instanceof Response) {
        this.#responder.send(exchange, result);
        return;
      }
    } catch (error) {
      this.#answer(exchange, error, true);
      return;
    }
    // send() and fail() never reject, so this chain cannot end in an
    // unhandled rejection.
    Promise.resolve(result).then(
      (response) => this.#answer(exchange, response, false),
      (error) => this.#answer(exchange, error, true),
    );
  }

  /** Sends what a handler returned or threw, unless it accepted a
   * WebSocket with `server.upgrade()` (then, as in Bun, what it returns is
   * not sent; what it throws is logged). */
  #answer(exchange: Exchange, outcome: unknown, threw: boolean): void {
    if (exchange.socket !== null || (exchange.responded && !exchange.open)) {
      if (threw) console.error("ymo: handler failed after upgrade:", outcome);
      return;
    }
    if (threw) this.#responder.fail(exchange, outcome);
    else this.#responder.send(exchange, outcome);
  }
}
