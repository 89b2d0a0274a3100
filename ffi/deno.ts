/**
 * The Deno backend: `Deno.dlopen` with the symbol table as it is.
 *
 * @module
 */
import { symbols } from "./symbols.ts";
import type { Native, NotifyCallback, Pointer } from "./_types.ts";

/** Opens the library at `path` through `Deno.dlopen`. */
export function open(path: string): Native {
  const lib = Deno.dlopen(path, symbols);
  return {
    runtime: "deno",
    path,
    fn: lib.symbols,
    canWait: true,
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
    notifyCallback(): NotifyCallback {
      // Deno wakes through the nonblocking ymo_worker_wait instead: its
      // threadsafe callbacks block the calling C thread (DESIGN.md).
      throw new Error("Notify callbacks are not used on Deno");
    },
  };
}
