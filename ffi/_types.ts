/**
 * What both FFI backends (`deno.ts`, `bun.ts`) give the rest of ymo: the
 * symbols as plain functions, plus the few things the runtimes do
 * differently.
 *
 * @module
 */
import type { symbols } from "./symbols.ts";

/**
 * An opaque native pointer: a `Deno.PointerObject` on Deno, a number on Bun.
 * Only ever handed back to ymo's own FFI calls.
 */
export type Pointer = unknown;

// deno-lint-ignore no-explicit-any
type AnyFn = (...args: any[]) => any;

/** The library's functions, called synchronously except `ymo_worker_wait`. */
export type NativeSymbols = { [K in keyof typeof symbols]: AnyFn };

/** A threadsafe callback that L may call with an i32 event. */
export interface NotifyCallback {
  /** UNSAFE: the function pointer handed to C. */
  readonly pointer: Pointer;
  /** Frees the callback. Only after C can no longer call it. */
  close(): void;
}

/** One loaded copy of libymo, seen through one runtime's FFI. */
export interface Native {
  readonly runtime: "deno" | "bun";
  readonly path: string;
  readonly fn: NativeSymbols;
  /**
   * Deno: `fn.ymo_worker_wait` returns a promise (a nonblocking call).
   * Bun: no such calls, wake-ups come through {@linkcode notifyCallback}.
   */
  readonly canWait: boolean;
  /** Reads a NUL-terminated string. */
  cstring(pointer: Pointer): string;
  /** True for a null pointer on either runtime. */
  isNull(pointer: Pointer): boolean;
  /** The address of a pointer, to post to another thread. */
  pointerValue(pointer: Pointer): bigint | number;
  /** The pointer at an address posted by another thread. */
  pointerFrom(value: bigint | number): Pointer;
  /** A fire-and-forget callback callable from any thread (Bun only). */
  notifyCallback(fn: (event: number) => void): NotifyCallback;
}
