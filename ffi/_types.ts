/**
 * What both FFI backends (`deno.ts`, `bun.ts`) give the rest of ymo: the
 * symbols as plain functions, plus everything the runtimes do differently
 * (waking a JavaScript thread, the exit hook, unref'ing a timer, Deno's
 * Request and Response shortcuts), so nothing above `ffi/` branches on the
 * runtime.
 *
 * @module
 */
import type { symbols } from "./symbols.ts";
import type { FastRequest, HeaderPairs } from "./_deno_inner.ts";

/**
 * An opaque native pointer: a `Deno.PointerObject` on Deno, a number on Bun.
 * Only ever handed back to ymo's own FFI calls.
 */
export type Pointer = unknown;

/** A timer as `setTimeout` and `setInterval` return it on this runtime. */
export type Timer = ReturnType<typeof setInterval>;

// deno-lint-ignore no-explicit-any
type AnyFn = (...args: any[]) => any;

/** The library's functions, called synchronously except `ymo_worker_wait`. */
export type NativeSymbols = { [K in keyof typeof symbols]: AnyFn };

/**
 * Wakes the JavaScript thread that drives one native worker when the loop
 * thread has queued work for it: Deno parks one nonblocking
 * `ymo_worker_wait`, Bun registers a threadsafe callback (DESIGN.md, "Waking
 * the JS thread").
 */
export interface Waker {
  /** Makes the waker keep the process alive (the default). */
  ref(): void;
  /** Lets the process exit while only this waker waits. */
  unref(): void;
  /**
   * Stops waking, unregisters from C what is still registered, and frees
   * what the waker owns. Only once C can no longer call it: after the worker
   * was released, joined, or its server stopped. Idempotent.
   */
  close(): void;
}

/** One loaded copy of libymo, seen through one runtime's FFI. */
export interface Native {
  readonly path: string;
  readonly fn: NativeSymbols;
  /** Reads a NUL-terminated string. */
  cstring(pointer: Pointer): string;
  /** True for a null pointer on either runtime. */
  isNull(pointer: Pointer): boolean;
  /** The address of a pointer, to post to another thread. */
  pointerValue(pointer: Pointer): bigint | number;
  /** The pointer at an address posted by another thread. */
  pointerFrom(value: bigint | number): Pointer;
  /**
   * Starts waking this thread for the native worker `worker`, which
   * `ymo_worker_start` has bound to it: `onWork` when requests or notices
   * may be queued (also once at the start on Bun, for what came before;
   * while it returns an unsettled promise, Deno parks no waiter),
   * `onReleased` once when C has released the worker for good. `stopping`
   * says whether the server is shutting down (an unref'd Deno waker polls,
   * and then parks again to hear the release).
   */
  waker(
    worker: Pointer,
    onWork: () => void | Promise<void>,
    onReleased: () => void,
    stopping: () => boolean,
  ): Waker;
  /**
   * Resolves after one turn of the runtime's event loop (its timers, I/O and
   * other tasks get to run): how a thread that runs ymo's loop between
   * batches lets the rest of the app go on. `setImmediate` on both: about
   * 1.2-1.4 µs, where `setTimeout(0)` waits a millisecond or more.
   */
  turn(): Promise<void>;
  /** Calls `fn` when the process exits (Deno's `unload`, Bun's `exit`). */
  onExit(fn: () => void): void;
  /** Lets the process exit while `timer` is pending. */
  unrefTimer(timer: Timer): void;
  /**
   * The runtime's error for a failed system call: on Deno an instance of
   * `Deno.errors[kind]` (e.g. `AddrInUse`), on Bun an Error; both with
   * `code` (e.g. "EADDRINUSE") and the same message.
   */
  systemError(kind: string, code: string, message: string): Error;
  /** Deno.serve's way of making Requests, or undefined: use the constructor. */
  readonly fastRequest: FastRequest | undefined;
  /** A Response's header fields without iterating its Headers, or undefined:
   * read `response.headers`. */
  headerList(response: Response): HeaderPairs | undefined;
  /** A Response's body when it is a fixed string or bytes nobody has read,
   * or undefined: read the stream. A promise where the runtime could not
   * hand the bytes over at once. */
  staticBody(
    response: Response,
  ): string | Uint8Array | Promise<Uint8Array> | undefined;
  /** C has copied `body`, the fixed body staticBody gave for `response`:
   * mark the Response used, as the built-in servers do after sending it,
   * and give the body's memory back now where the runtime counts it toward
   * its next full collection (Deno). */
  bodySent(response: Response, body: string | Uint8Array): void;
  /** The value of `promise` if it is already fulfilled, else undefined
   * (pending, rejected, or this runtime cannot tell). */
  fulfilled<T>(promise: Promise<T>): T | undefined;
}
