/**
 * Errors from the native library: {@linkcode YmoError}, and `check()`, which
 * turns a negative return code into one.
 *
 * @module
 */
import { loadNative } from "../ffi/native.ts";

const native = await loadNative();

/** The error thrown when the native library reports a failure. */
export class YmoError extends Error {
  /** The negative error code from ymo.h, e.g. -98 for EADDRINUSE. */
  readonly code: number;
  /**
   * Makes the error, with the library's text for `code` after the message.
   *
   * @param message What failed.
   * @param code The native error code.
   */
  constructor(message: string, code: number) {
    super(`${message}: ${native.cstring(native.fn.ymo_strerror(code))}`);
    this.name = "YmoError";
    this.code = code;
  }
}

/** Returns `code`, or throws a {@linkcode YmoError} for a negative one. */
export function check(code: number, what: string): number {
  if (code < 0) throw new YmoError(what, code);
  return code;
}
