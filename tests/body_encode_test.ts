// A long string body the app returns again and again is encoded once and
// reused (server/_response.ts); what each response carries must still be
// its own string's bytes, whatever came before it.
import assert from "node:assert/strict";
import { test } from "./_shim.ts";
import { serve } from "../mod.ts";

test("repeated, changed and short string bodies each arrive as their own UTF-8", async () => {
  const same = "é".repeat(2000) + "end";
  const bodies = [
    same,
    same,
    same,
    "ü".repeat(2000) + "end", // same length, other bytes
    same,
    "x".repeat(10),
    same,
    `${same}`, // equal content, another string object
  ];
  let i = 0;
  const server = serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(bodies[i++]),
  );
  try {
    for (const expected of bodies) {
      const res = await fetch(`http://127.0.0.1:${server.port}/`);
      assert.equal(await res.text(), expected);
    }
  } finally {
    await server.shutdown();
  }
});
