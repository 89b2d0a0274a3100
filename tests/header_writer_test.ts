// ffi/codec.ts: HeaderWriter turns a response's fields into the header block
// C sends: names in lower case, the fields ymo frames itself left out,
// values one byte per code point, and UTF-8 only for a block with a code
// point wider than a byte. Arrays (Deno's inner field list) and Headers
// objects take different loops and must give the same block.
import assert from "node:assert/strict";
import { test } from "./_shim.ts";
import { HeaderWriter } from "../ffi/codec.ts";
import { loadNative } from "../ffi/native.ts";

const { headerList } = await loadNative();

type Pairs = [string, string][];

/** The block written for `fields`, as an array and through an iterable
 * that is not one (as a Headers object is). */
function written(fields: Pairs, keepLength = false) {
  const writer = new HeaderWriter();
  const n = writer.write(fields, keepLength);
  const fromArray = writer.bytes.slice(0, n);
  const keptFromArray = writer.keptLength;
  const m = writer.write(
    { [Symbol.iterator]: () => fields.values() },
    keepLength,
  );
  assert.deepEqual(writer.bytes.slice(0, m), fromArray);
  assert.equal(writer.keptLength, keptFromArray);
  return { bytes: fromArray, kept: keptFromArray };
}

const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);

test("header names are written in lower case, values as they are", () => {
  const { bytes } = written([["X-Mixed-Case", "Value AbC"], [
    "content-type",
    "text/plain",
  ]]);
  assert.equal(
    latin1(bytes),
    "x-mixed-case: Value AbC\r\ncontent-type: text/plain\r\n",
  );
});

test("the fields ymo frames itself are left out, in any case", () => {
  const { bytes, kept } = written([
    ["Content-Length", "5"],
    ["Transfer-Encoding", "chunked"],
    ["CONNECTION", "close"],
    ["Date", "yesterday"],
    ["Keep-Alive", "timeout=1"],
    ["x-kept", "1"],
  ]);
  assert.equal(latin1(bytes), "x-kept: 1\r\n");
  assert.equal(kept, false);
});

test("keepLength keeps the app's Content-Length and says so", () => {
  const { bytes, kept } = written([["Content-Length", "42"], [
    "Connection",
    "close",
  ]], true);
  assert.equal(latin1(bytes), "content-length: 42\r\n");
  assert.equal(kept, true);
});

test("values up to U+00FF go out one byte each", () => {
  const { bytes } = written([["x-latin1", "caf\u00e9 \u00ff"]]);
  assert.deepEqual(
    [...bytes],
    [...new TextEncoder().encode("x-latin1: caf"), 0xe9, 0x20, 0xff, 13, 10],
  );
});

test("a value wider than a byte makes the whole block UTF-8", () => {
  const { bytes, kept } = written([
    ["x-first", "\u00e9"],
    ["content-length", "3"],
    ["x-wide", "\u20ac"],
  ], true);
  assert.deepEqual(
    bytes,
    new TextEncoder().encode(
      "x-first: \u00e9\r\ncontent-length: 3\r\nx-wide: \u20ac\r\n",
    ),
  );
  assert.equal(kept, true);
});

test("a block larger than the initial buffer is written whole", () => {
  const fields: Pairs = [];
  for (let i = 0; i < 100; i++) fields.push([`x-field-${i}`, "v".repeat(100)]);
  const { bytes } = written(fields);
  const expected = fields.map(([n, v]) => `${n}: ${v}\r\n`).join("");
  assert.equal(bytes.byteLength, expected.length);
  assert.equal(latin1(bytes), expected);
});

test("the backend's field list matches the Response's Headers", () => {
  const responses = [
    () => new Response("text"),
    () => new Response(""),
    () => Response.json({ a: 1 }),
    () => new Response("x", { headers: { "X-A": "1" } }),
    () => new Response("x", { headers: { "content-type": "text/html" } }),
    () => new Response(new Uint8Array(2)),
    () => new Response(null, { status: 204 }),
  ];
  for (const make of responses) {
    const response = make();
    const list = headerList(response);
    const viaList = list === undefined
      ? undefined
      : written([...list] as Pairs);
    const viaHeaders = written([...make().headers]);
    if (viaList === undefined) continue; // This backend reads Headers.
    const sorted = (b: Uint8Array) => latin1(b).split("\r\n").sort().join("\n");
    assert.equal(sorted(viaList.bytes), sorted(viaHeaders.bytes));
  }
});
