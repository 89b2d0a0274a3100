/**
 * The Bun backend: `bun:ffi`'s `dlopen`, with the Deno-format symbol table
 * translated type by type, a waker built on a threadsafe callback, and Bun's
 * own exit hook and timer unref.
 *
 * @module
 */
import { symbols } from "./symbols.ts";
import { fulfilled, staticBody } from "./_bun_inner.ts";
import type { Native, NativeSymbols, Pointer, Timer, Waker } from "./_types.ts";

// Imported through a variable so that Deno, which type-checks and publishes
// this file too, does not try to resolve a Bun-only module.
const BUN_FFI = "bun:ffi";
// deno-lint-ignore no-explicit-any
const ffi: any = await import(BUN_FFI);

// Bun's global; typed here since this file is type-checked by Deno too.
const setImmediate = (globalThis as unknown as {
  setImmediate(fn: () => void): unknown;
}).setImmediate;

const TYPES: Record<string, string> = {
  i32: "i32",
  u32: "u32",
  i64: "i64",
  void: "void",
  pointer: "ptr",
  buffer: "ptr",
  function: "ptr",
};

function bunType(type: string): string {
  const translated = TYPES[type];
  if (translated === undefined) {
    throw new TypeError(`Cannot translate FFI type for Bun: ${type}`);
  }
  return translated;
}

/** The symbol table in bun:ffi's format (exported for tests). */
export function bunSymbols(): Record<
  string,
  { args: string[]; returns: string }
> {
  const table: Record<string, { args: string[]; returns: string }> = {};
  for (const [name, def] of Object.entries(symbols)) {
    table[name] = {
      args: (def.parameters as readonly string[]).map(bunType),
      returns: bunType(def.result),
    };
  }
  return table;
}

/** Keeps the process alive: an interval that never fires in practice. */
function keepAlive(): Timer {
  return setInterval(() => {}, 1 << 30);
}

function unrefTimer(timer: Timer): void {
  (timer as { unref?: () => void }).unref?.();
}

/**
 * Wakes the thread through a threadsafe callback that the loop thread calls
 * on the empty-to-non-empty transition of the worker's queue (event 0) and
 * once when it releases the worker (event 1). Bun queues the call on this
 * thread and returns at once. One i32 argument, no return value: the shapes
 * measured to be reliable (DESIGN.md, trap 6).
 *
 * The callback does not keep the process alive, and Bun spins on a pending
 * top-level await with nothing ref'd (trap 5): a ref'd interval does, while
 * the waker is ref'd.
 */
class BunWaker implements Waker {
  #fn: NativeSymbols;
  #worker: Pointer;
  #onReleased: () => void;
  // deno-lint-ignore no-explicit-any
  #callback: any;
  #keepAlive: Timer | undefined;
  #registered = true;
  #refed = true;
  #closed = false;

  constructor(
    fn: NativeSymbols,
    worker: Pointer,
    onWork: () => void | Promise<void>,
    onReleased: () => void,
  ) {
    this.#fn = fn;
    this.#worker = worker;
    this.#onReleased = onReleased;
    this.#callback = new ffi.JSCallback((event: number) => {
      if (event === 1) this.#released();
      else onWork();
    }, { args: ["i32"], returns: "void", threadsafe: true });
    fn.ymo_worker_set_notify(worker, this.#callback.ptr);
    this.#keepAlive = keepAlive();
    onWork(); // Requests that came before the callback was set.
  }

  /** Unregisters the callback in C, under C's lock: from then on C calls it
   * no more (DESIGN.md, trap 2). */
  #unregister(): void {
    if (!this.#registered) return;
    this.#registered = false;
    this.#fn.ymo_worker_set_notify(this.#worker, null);
  }

  #stopKeepAlive(): void {
    if (this.#keepAlive !== undefined) clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
  }

  #released(): void {
    this.#unregister();
    this.#stopKeepAlive();
    this.#onReleased();
  }

  unref(): void {
    if (!this.#refed) return;
    this.#refed = false;
    if (this.#keepAlive !== undefined) unrefTimer(this.#keepAlive);
  }

  ref(): void {
    if (this.#refed) return;
    this.#refed = true;
    if (this.#keepAlive !== undefined) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = keepAlive();
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unregister();
    this.#stopKeepAlive();
    this.#callback.close();
  }
}

/** Opens the library at `path` through bun:ffi. */
export function open(path: string): Native {
  const lib = ffi.dlopen(path, bunSymbols());
  const fn: NativeSymbols = lib.symbols;
  return {
    path,
    fn,
    cstring(pointer: Pointer): string {
      return pointer ? new ffi.CString(pointer).toString() : "";
    },
    isNull(pointer: Pointer): boolean {
      return !pointer;
    },
    // Bun's pointers are plain numbers already.
    pointerValue(pointer: Pointer): bigint | number {
      return pointer as number;
    },
    pointerFrom(value: bigint | number): Pointer {
      return Number(value);
    },
    waker(worker, onWork, onReleased): Waker {
      return new BunWaker(fn, worker, onWork, onReleased);
    },
    turn(): Promise<void> {
      return new Promise((resolve) => setImmediate(resolve));
    },
    onExit(hook: () => void): void {
      (globalThis as unknown as {
        process: { on(event: string, fn: () => void): void };
      }).process.on("exit", hook);
    },
    unrefTimer,
    systemError(_kind: string, code: string, message: string): Error {
      return Object.assign(new Error(message), { code });
    },
    // Bun's Request and Response are native: the standard path, but for
    // fixed bodies (_bun_inner.ts).
    fastRequest: undefined,
    headerList: () => undefined,
    staticBody,
    // bytes() marked the Response used; detaching the buffer it made
    // changed nothing measurable on Bun.
    bodySent: () => {},
    fulfilled,
  };
}
