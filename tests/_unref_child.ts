/**
 * A child process for lifecycle_test.ts. It prints its port once listening
 * and serves until asked to stop being the reason the process lives: a
 * request to /unref makes it call `server.unref()`, a request to /shutdown
 * makes it call `server.shutdown()`. Either way the process must then exit on
 * its own, with code 0.
 */

import { serve } from "./_target.ts";

const server = serve({
  port: 0,
  hostname: "127.0.0.1",
  onListen(addr) {
    console.log(`port=${addr.port}`);
  },
}, (req) => {
  const path = new URL(req.url).pathname;
  // Act after the response has had time to go out.
  if (path === "/unref") setTimeout(() => server.unref(), 50);
  if (path === "/shutdown") setTimeout(() => server.shutdown(), 50);
  return new Response(`child ${path}`);
});
