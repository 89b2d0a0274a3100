/**
 * The Bun backend: `bun:ffi`'s `dlopen`, with the Deno-format symbol table
 * translated type by type.
 *
 * @module
 */
import { symbols } from "./symbols.ts";
import type { Native, NotifyCallback, Pointer } from "./_types.ts";

// Imported through a variable so that Deno, which type-checks and publishes
// this file too, does not try to resolve a Bun-only module.
const BUN_FFI = "bun:ffi";
// deno-lint-ignore no-explicit-any
const ffi: any = await import(BUN_FFI);

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

/** Opens the library at `path` through bun:ffi. */
export function open(path: string): Native {
  const lib = ffi.dlopen(path, bunSymbols());
  return {
    runtime: "bun",
    path,
    fn: lib.symbols,
    canWait: false,
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
    notifyCallback(fn: (event: number) => void): NotifyCallback {
      // threadsafe: L calls it from its own thread; Bun queues the call on
      // this JS thread and returns at once. One i32 argument, no return
      // value: the shapes measured to be reliable (DESIGN.md, trap 6).
      const cb = new ffi.JSCallback(fn, {
        args: ["i32"],
        returns: "void",
        threadsafe: true,
      });
      return { pointer: cb.ptr, close: () => cb.close() };
    },
  };
}
