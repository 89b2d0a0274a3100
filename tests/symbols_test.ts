// The FFI symbol table (ffi/symbols.ts) must match the public header
// (native/include/ymo.h): same functions, same parameter counts, and the
// option and flag numbers must agree, so the two cannot drift apart.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "./_shim.ts";
import {
  EPIPE,
  ESHUTDOWN,
  ESTALE,
  Option,
  RESP_CLOSE,
  RESP_DONE,
  RESP_OWN_LENGTH,
  symbols,
} from "../ffi/symbols.ts";
import {
  FIELD_SIZE,
  FIXED_SIZE,
  NOTICE_SIZE,
  RECORD_FIELDS,
  REQF_ABORT,
  REQF_DRAIN,
  REQF_HEAD,
  REQF_KEEPALIVE,
  RESP_HIGH_WATER,
  WS_HIGH_WATER,
} from "../ffi/codec.ts";

const header = readFileSync(
  new URL("../native/include/ymo.h", import.meta.url),
  "utf8",
);

/** name -> parameter count, for every YMO_EXTERN function in ymo.h. */
function externs(): Map<string, number> {
  const found = new Map<string, number>();
  const re = /YMO_EXTERN\s+[\w\s*]+?\b(ymo_\w+)\s*\(([^)]*)\)/g;
  for (const m of header.matchAll(re)) {
    const params = m[2].trim();
    found.set(
      m[1],
      params === "void" || params === "" ? 0 : params.split(",").length,
    );
  }
  return found;
}

/** The body of the X-macro `#define name(X) ...` in ymo.h. */
function macro(name: string): string {
  const m = header.match(
    new RegExp(`#define ${name}\\(X\\)((?:.*\\\\\\n)*.*)`),
  );
  assert.ok(m, `ymo.h defines ${name}(X)`);
  return m[1];
}

function define(name: string): number {
  const m = header.match(new RegExp(`#define\\s+${name}\\s+(-?\\d+)`));
  assert.ok(m, `ymo.h defines ${name}`);
  return Number(m[1]);
}

test("symbols.ts declares exactly the functions ymo.h exports", () => {
  const fromHeader = externs();
  assert.ok(fromHeader.size > 10, "the header parse found the API");
  assert.deepEqual(
    [...Object.keys(symbols)].sort(),
    [...fromHeader.keys()].sort(),
  );
  for (const [name, def] of Object.entries(symbols)) {
    assert.equal(
      def.parameters.length,
      fromHeader.get(name),
      `parameter count of ${name}`,
    );
  }
});

test("option numbers in symbols.ts match YMO_OPTION_MAP in ymo.h", () => {
  const map = new Map<string, number>();
  const options = macro("YMO_OPTION_MAP");
  for (const m of options.matchAll(/X\((\w+), (\d+), \d+\)/g)) {
    map.set(m[1], Number(m[2]));
  }
  assert.deepEqual(Object.fromEntries(map), { ...Option });
});

test("flags, error codes and record sizes match ymo.h", () => {
  assert.equal(RESP_DONE, define("YMO_RESP_DONE"));
  assert.equal(RESP_CLOSE, define("YMO_RESP_CLOSE"));
  assert.equal(RESP_OWN_LENGTH, define("YMO_RESP_OWN_LENGTH"));
  assert.equal(FIXED_SIZE, define("YMO_REQ_FIXED_SIZE"));
  assert.equal(REQF_KEEPALIVE, define("YMO_REQF_KEEPALIVE"));
  assert.equal(REQF_HEAD, define("YMO_REQF_HEAD"));
  assert.equal(REQF_ABORT, define("YMO_REQF_ABORT"));
  assert.equal(REQF_DRAIN, define("YMO_REQF_DRAIN"));
  for (
    const [name, value] of [
      ["YMO_RESP_HIGH_WATER", RESP_HIGH_WATER],
      ["YMO_WS_HIGH_WATER", WS_HIGH_WATER],
    ] as const
  ) {
    const high = header.match(
      new RegExp(`#define ${name} \\((\\d+) \\* 1024\\)`),
    );
    assert.ok(high, `ymo.h defines ${name} as (N * 1024)`);
    assert.equal(value, Number(high[1]) * 1024);
  }
  const errno = (name: string) => {
    const m = header.match(new RegExp(`X\\(${name}, (-\\d+),`));
    assert.ok(m, `ymo.h maps ${name}`);
    return Number(m[1]);
  };
  assert.equal(ESHUTDOWN, errno("ESHUTDOWN"));
  assert.equal(ESTALE, errno("ESTALE"));
  assert.equal(EPIPE, errno("EPIPE"));
});

test("record fields in codec.ts match YMO_RECORD_MAP in ymo.h", () => {
  const map: Record<string, { at: number; width: number }> = {};
  const fields = macro("YMO_RECORD_MAP");
  for (const m of fields.matchAll(/X\((\w+), (\d+), (\d+)\)/g)) {
    map[m[1]] = { at: Number(m[2]), width: Number(m[3]) };
  }
  assert.ok(Object.keys(map).length > 10, "the header parse found the table");
  assert.deepEqual(map, { ...RECORD_FIELDS });
  assert.equal(NOTICE_SIZE, define("YMO_REQ_ABORT_SIZE"));
  assert.equal(FIELD_SIZE, define("YMO_REQ_FIELD_SIZE"));
  // The fixed part ends where its last field ends.
  const { at, width } = RECORD_FIELDS.reserved2;
  assert.equal(FIXED_SIZE, at + width);
});
