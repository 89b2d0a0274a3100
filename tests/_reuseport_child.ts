/**
 * A child process for reuseport_test.ts: serves on the port in
 * `YMO_TEST_PORT`, with `reusePort` when `YMO_TEST_REUSE_PORT` is "1", and
 * answers every request with `YMO_TEST_NAME` and its pid, so the test can tell
 * which process took a connection.
 *
 * Prints "listening on port N" once it listens, or "error: MESSAGE" and exits
 * 3 when serve() throws. SIGTERM shuts the server down; the process then
 * prints "finished" and exits 0 on its own.
 */

import process from "node:process";
import { serve, type Server } from "../mod.ts";

const name = process.env.YMO_TEST_NAME ?? "child";
let server: Server;
try {
  server = serve({
    port: Number(process.env.YMO_TEST_PORT),
    hostname: "127.0.0.1",
    reusePort: process.env.YMO_TEST_REUSE_PORT === "1",
    onListen: (addr) =>
      console.log(`listening on port ${"port" in addr ? addr.port : 0}`),
  }, () => new Response(`${name} ${process.pid}`));
} catch (error) {
  console.log(`error: ${(error as Error).message}`);
  process.exit(3);
}
const onTerm = () => server.shutdown();
process.on("SIGTERM", onTerm);
await server.finished;
process.off("SIGTERM", onTerm);
console.log("finished");
