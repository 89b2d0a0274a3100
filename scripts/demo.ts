/**
 * The demo app served by `scripts/serve.ts` when no app is named.
 *
 * - `GET /`, `HEAD /`: "Hello, World!"
 * - `POST /echo`: the request body, byte for byte
 * - `GET /headers`: the request headers as a JSON object
 * - `GET /stream`: a chunked response streamed in parts
 * - anything else: 404
 *
 * @module
 */

const encoder = new TextEncoder();

function stream(): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    async pull(controller) {
      if (i === 5) {
        controller.close();
        return;
      }
      controller.enqueue(encoder.encode(`chunk ${i++}\n`));
      await new Promise((resolve) => setTimeout(resolve, 10));
    },
  });
}

export default {
  fetch(req: Request): Response | Promise<Response> {
    const { pathname } = new URL(req.url);
    if (pathname === "/" && (req.method === "GET" || req.method === "HEAD")) {
      return new Response("Hello, World!", {
        headers: { "content-type": "text/plain;charset=UTF-8" },
      });
    }
    if (pathname === "/echo" && req.method === "POST") {
      return req.arrayBuffer().then((body) =>
        new Response(body, {
          headers: {
            "content-type": req.headers.get("content-type") ??
              "application/octet-stream",
          },
        })
      );
    }
    if (pathname === "/headers" && req.method === "GET") {
      return Response.json(Object.fromEntries(req.headers));
    }
    if (pathname === "/stream" && req.method === "GET") {
      return new Response(stream(), {
        headers: { "content-type": "text/plain;charset=UTF-8" },
      });
    }
    return new Response("Not Found", { status: 404 });
  },
};
