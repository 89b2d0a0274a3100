/**
 * The thread pool of a server started with `workers`: one Web Worker per
 * native worker, running `_thread.ts`, handed its worker once it has loaded,
 * restarted when it crashes, until the server stops. Also the messages
 * between the pool and its threads.
 *
 * @module
 */
import { loadNative } from "../ffi/native.ts";
import type { Pointer } from "../ffi/_types.ts";
import type { WorkerHost } from "./_worker.ts";
import type { NativeRoute } from "./_routes.ts";

const native = await loadNative();
const lib = native.fn;

/** What the pool tells a thread once it has loaded: its worker and app. */
export interface ThreadInit {
  /** The address of the thread's native ymo_worker_t. */
  pointer: bigint | number;
  /** The workers of the server's other loops, which its publishes reach
   * too. */
  otherLoops: (bigint | number)[];
  /** The app module's URL. */
  module: string;
  /** "host:port" for requests without a Host header. */
  defaultHost: string;
  /** Milliseconds before an unanswered request gets 503, if set. */
  handlerTimeout?: number;
  /** The routes C matches (from the `routes` option), which the module's
   * own `routes` must compile to, so that route numbers agree. */
  routes?: readonly NativeRoute[];
  /** The server's URL (href), port and address. */
  url: string;
  port: number;
  hostname: string;
}

/** What a thread tells the pool. */
export type ThreadMessage =
  | { type: "loaded" }
  | { type: "ready" }
  | { type: "stopped" }
  | { type: "stop"; closeActiveConnections: boolean }
  | { type: "crashed"; message: string; detached: boolean };

/**
 * The Web Workers of a server started with `workers`: one per native worker,
 * restarted when one crashes, until the server stops.
 */
export class ThreadPool {
  #host: WorkerHost;
  /** The native worker of each thread, each on a loop of its own. */
  #workers: Pointer[];
  #module: string;
  #threads: (Worker | null)[];
  #ready: boolean[];
  #remaining: number;
  #resolveStopped!: () => void;
  /** Resolves when every thread has stopped for good. */
  readonly stopped: Promise<void>;

  /**
   * Starts a thread per native worker, each loading `module`.
   *
   * @param host The server: its address, timeout, and whether it stops.
   * @param workers The native ymo_worker_t of each thread, each the worker
   * of one of the server's loops.
   * @param module The app module's URL.
   */
  constructor(host: WorkerHost, workers: Pointer[], module: string) {
    const n = workers.length;
    this.#host = host;
    this.#workers = workers;
    this.#module = module;
    this.#threads = new Array(n).fill(null);
    this.#ready = new Array(n).fill(false);
    this.#remaining = n;
    this.stopped = new Promise((resolve) => this.#resolveStopped = resolve);
    for (let i = 0; i < n; i++) this.#spawn(i);
  }

  #spawn(i: number): void {
    const url = new URL("./_thread.ts", import.meta.url);
    const thread = new Worker(url.href, { type: "module" });
    this.#threads[i] = thread;
    this.#ready[i] = false;
    thread.onmessage = (event: MessageEvent<ThreadMessage>) => {
      const message = event.data;
      // The thread says when it can take its orders: Bun drops messages
      // that arrive while a worker module is still in its top-level await.
      if (message.type === "loaded") this.#init(i, thread);
      else if (message.type === "ready") this.#ready[i] = true;
      else if (message.type === "stopped") this.#done(i, thread);
      else if (message.type === "stop") {
        // A handler on the thread called Bun's server.stop().
        this.#host.stop(message.closeActiveConnections);
      } else this.#crashed(i, thread, message.message, message.detached);
    };
    thread.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#crashed(i, thread, event.message, false);
    };
  }

  #init(i: number, thread: Worker): void {
    const init: ThreadInit = {
      pointer: native.pointerValue(this.#workers[i]),
      otherLoops: this.#workers.filter((_, j) => j !== i).map((w) =>
        native.pointerValue(w)
      ),
      module: this.#module,
      defaultHost: this.#host.defaultHost,
      handlerTimeout: this.#host.handlerTimeout,
      routes: this.#host.routes?.native,
      url: this.#host.url,
      port: this.#host.port,
      hostname: this.#host.hostname,
    };
    thread.postMessage(init);
  }

  #done(i: number, thread: Worker): void {
    if (this.#threads[i] !== thread) return;
    this.#threads[i] = null;
    thread.terminate();
    if (--this.#remaining === 0) this.#resolveStopped();
  }

  #crashed(
    i: number,
    thread: Worker,
    message: string,
    detached: boolean,
  ): void {
    if (this.#threads[i] !== thread) return;
    const worker = this.#workers[i];
    thread.terminate();
    // A thread that died without detaching cannot answer what it held: let
    // go of it from here, now that it runs no more.
    if (!detached) lib.ymo_worker_join(worker);
    console.error(`ymo: worker thread ${i} crashed: ${message}`);
    if (this.#host.stopping) {
      this.#done(i, thread);
      return;
    }
    // Restart at once if it had served; after a pause if it never got
    // going (a module that throws on import would otherwise spin).
    const delay = this.#ready[i] ? 0 : 1000;
    this.#threads[i] = null;
    setTimeout(() => {
      if (this.#host.stopping) {
        if (--this.#remaining === 0) this.#resolveStopped();
        return;
      }
      this.#spawn(i);
    }, delay);
  }

  /** Ends every thread (after the server is stopped). */
  terminate(): void {
    for (const thread of this.#threads) thread?.terminate();
    this.#threads.fill(null);
  }
}
