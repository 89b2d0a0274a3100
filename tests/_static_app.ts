// The app that tests/cli_test.ts serves with scripts/serve.ts to check its
// `static` member: `/static` is a static route, and the handler answers
// something else for it, so a reply tells which of the two answered.
// YMO_TEST_BAD_STATIC=1 exports an invalid `static` instead.
import process from "node:process";

let calls = 0;

export default {
  static: process.env.YMO_TEST_BAD_STATIC === "1"
    ? { "/static": "not a Response" }
    : { "/static": new Response("from static") },
  fetch(req: Request): Response {
    calls++;
    const { pathname } = new URL(req.url);
    // The handler calls on this thread so far, this one included.
    if (pathname === "/calls") return new Response(String(calls));
    return new Response(`from fetch ${pathname}`);
  },
};
