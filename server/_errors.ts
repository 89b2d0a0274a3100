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

/** ymo.h's codes that are a system call's errno, with the name of Deno's
 * error class for them. */
const SYSTEM_ERRORS: Record<number, [kind: string, code: string]> = {
  [-98]: ["AddrInUse", "EADDRINUSE"],
  [-99]: ["AddrNotAvailable", "EADDRNOTAVAIL"],
  [-13]: ["PermissionDenied", "EACCES"],
};

/**
 * Returns `code`, or throws for a negative one: the runtime's own error for
 * a system call's failure (on Deno `Deno.errors.AddrInUse` for a busy port,
 * on Bun an Error with `code` "EADDRINUSE", as their serve() throw), else a
 * {@linkcode YmoError}.
 */
export function checkSystem(code: number, what: string): number {
  const system = SYSTEM_ERRORS[code];
  if (system === undefined) return check(code, what);
  const text = native.cstring(native.fn.ymo_strerror(code));
  throw native.systemError(system[0], system[1], `${what}: ${text}`);
}

/** Returns `code`, or throws a {@linkcode YmoError} for a negative one. */
export function check(code: number, what: string): number {
  if (code < 0) throw new YmoError(what, code);
  return code;
}
