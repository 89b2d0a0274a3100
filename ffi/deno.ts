/**
 * The Deno backend: `Deno.dlopen` with the symbol table as it is, a waker
 * that parks a nonblocking `ymo_worker_wait`, and Deno's own exit hook,
 * timer unref and Request/Response shortcuts.
 *
 * @module
 */
import { ESHUTDOWN, symbols } from "./symbols.ts";
import type { Native, NativeSymbols, Pointer, Timer, Waker } from "./_types.ts";
import { setImmediate } from "node:timers";
import {
  bodySent,
  fastRequest,
  headerList,
  staticBody,
} from "./_deno_inner.ts";

/** Milliseconds between takes of an unref'd waker. */
const POLL_MS = 5;

/**
 * Wakes the thread through the nonblocking `ymo_worker_wait`: one waiter
 * parked at a time (DESIGN.md, trap 4), a drain each time it returns. Deno's
 * threadsafe callbacks would block the loop thread instead (DESIGN.md).
 *
 * A pending nonblocking call keeps the process alive and cannot be
 * cancelled (trap 3), so an unref'd waker lets its waiter return (through
 * `ymo_worker_notify`) and polls from an unref'd timer instead.
 */
class DenoWaker implements Waker {
  #fn: NativeSymbols;
  #worker: Pointer;
  #onWork: () => void | Promise<void>;
  #onReleased: () => void;
  #stopping: () => boolean;
  #poll: Timer | undefined;
  #refed = true;
  #closed = false;

  constructor(
    fn: NativeSymbols,
    worker: Pointer,
    onWork: () => void | Promise<void>,
    onReleased: () => void,
    stopping: () => boolean,
  ) {
    this.#fn = fn;
    this.#worker = worker;
    this.#onWork = onWork;
    this.#onReleased = onReleased;
    this.#stopping = stopping;
    this.#pump();
  }

  /** Parks one waiter at a time and drains when it returns. */
  async #pump(): Promise<void> {
    for (;;) {
      if (!this.#refed) {
        // An unref'd server must not hold the process open, and a pending
        // nonblocking call would: poll from an unref'd timer instead.
        this.#startPolling();
        return;
      }
      const n: number = await this.#fn.ymo_worker_wait(this.#worker);
      if (this.#closed) return;
      if (n === ESHUTDOWN) {
        this.#stopPolling();
        this.#onReleased();
        return;
      }
      // While onWork's busy period runs, no waiter is parked: that thread
      // polls C itself.
      await this.#onWork();
    }
  }

  #startPolling(): void {
    if (this.#poll !== undefined) return;
    this.#poll = setInterval(() => {
      if (this.#refed) {
        this.#stopPolling();
        this.#pump();
        return;
      }
      if (this.#stopping()) {
        // Released waiters return at once; let the pump see ESHUTDOWN.
        this.#stopPolling();
        this.#refed = true;
        this.#pump();
        return;
      }
      this.#onWork();
    }, POLL_MS);
    Deno.unrefTimer(this.#poll);
  }

  #stopPolling(): void {
    if (this.#poll !== undefined) clearInterval(this.#poll);
    this.#poll = undefined;
  }

  unref(): void {
    if (!this.#refed || this.#closed) return;
    this.#refed = false;
    // The parked waiter returns and the pump sees it is unref'd.
    this.#fn.ymo_worker_notify(this.#worker);
  }

  ref(): void {
    // The polling timer sees it and parks a waiter again.
    this.#refed = true;
  }

  close(): void {
    this.#closed = true;
    this.#stopPolling();
  }
}

/** Opens the library at `path` through `Deno.dlopen`. */
export function open(path: string): Native {
  const lib = Deno.dlopen(path, symbols);
  const fn: NativeSymbols = lib.symbols;
  return {
    path,
    fn,
    cstring(pointer: Pointer): string {
      return pointer === null
        ? ""
        : Deno.UnsafePointerView.getCString(pointer as Deno.PointerObject);
    },
    isNull(pointer: Pointer): boolean {
      return pointer === null;
    },
    pointerValue(pointer: Pointer): bigint | number {
      return Deno.UnsafePointer.value(pointer as Deno.PointerValue);
    },
    pointerFrom(value: bigint | number): Pointer {
      return Deno.UnsafePointer.create(BigInt(value));
    },
    waker(worker, onWork, onReleased, stopping): Waker {
      return new DenoWaker(fn, worker, onWork, onReleased, stopping);
    },
    turn(): Promise<void> {
      return new Promise((resolve) => setImmediate(resolve));
    },
    onExit(hook: () => void): void {
      globalThis.addEventListener("unload", hook);
    },
    unrefTimer(timer: Timer): void {
      Deno.unrefTimer(timer);
    },
    systemError(kind: string, code: string, message: string): Error {
      const errors = Deno.errors as unknown as Record<
        string,
        new (message: string) => Error
      >;
      const error = new (errors[kind] ?? Error)(message);
      Object.defineProperty(error, "code", { value: code, enumerable: true });
      return error;
    },
    fastRequest,
    headerList,
    staticBody,
    bodySent,
    // V8 offers no public way to read a promise's state.
    fulfilled: () => undefined,
  };
}
