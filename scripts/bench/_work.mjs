// Payloads, routes and the CPU-bound task shared by every benchmark app: the
// fetch-style app (app.ts, served by ymo, Deno.serve and Bun.serve) and the
// node:http app (app_node.mjs). Plain JavaScript so that Node can import it.

import { createHash } from "node:crypto";
import process from "node:process";

/** Body of `GET /`: 13 bytes. */
export const HELLO = "Hello, World!";

/** Body of `GET /16k`: 16 KiB. Never mutated, so it is safe to share. */
export const BODY_16K = new Uint8Array(16 * 1024).fill(0x61);

/** One chunk of `GET /stream`; the stream sends STREAM_CHUNKS copies. */
export const STREAM_CHUNK = new Uint8Array(16 * 1024).fill(0x62);

/** Chunks per `/stream` response: 64 x 16 KiB = 1 MiB. */
export const STREAM_CHUNKS = 64;

/**
 * Body of `GET /json16k`: about 16 KiB of JSON, records with varied fields
 * as an API would send them, so it compresses like real JSON (about 5:1),
 * not like a run of one byte. Built once, the same on every server.
 */
export const JSON_16K = (() => {
  const cities = ["Lisbon", "Osaka", "Quito", "Tromsø", "Accra", "Perth"];
  const items = [];
  for (let i = 0; JSON.stringify(items).length < 16 * 1024 - 160; i++) {
    items.push({
      id: i,
      name: `user-${(i * 7919) % 10007}`,
      email: `user${(i * 104729) % 99991}@example.org`,
      city: cities[i % cities.length],
      active: i % 3 !== 0,
      score: Math.round(((i * 2654435761) % 100000) / 10) / 10,
    });
  }
  return JSON.stringify(items);
})();

/** Size of `POST /echo` bodies sent by the benchmark (echo.lua). */
export const ECHO_BYTES = 1024;

/**
 * The WebSocket routes, served by the peers started with `--websocket` and
 * loaded by ws_load.c: WS_ECHO sends every message back; WS_SUB subscribes
 * to WS_TOPIC; WS_PUB sends every message it receives to every subscriber.
 */
export const WS_ECHO = "/ws-echo";
export const WS_SUB = "/ws-sub";
export const WS_PUB = "/ws-pub";
export const WS_TOPIC = "bench";

const CPU_INPUT = new Uint8Array(1024).fill(0x63);

/**
 * Hashes CPU_INPUT `rounds` times with SHA-256, each round chained to the
 * previous digest so that no round can be skipped, and returns the last digest
 * in hex. Synchronous on purpose: the `cpu` workload must hold the JS thread.
 *
 * @param {number} rounds
 * @returns {string}
 */
export function hashRounds(rounds) {
  let digest = CPU_INPUT.subarray(0, 32);
  for (let i = 1; i < rounds; i++) {
    digest = createHash("sha256").update(CPU_INPUT).update(digest).digest();
  }
  return createHash("sha256").update(CPU_INPUT).update(digest).digest("hex");
}

/**
 * Finds how many hashRounds() rounds take `targetUs` microseconds of CPU time
 * per call in this runtime, timed with process.cpuUsage(), which, unlike a
 * clock, does not count time the process spent waiting for a core on a busy
 * machine. A first estimate comes from the fastest of several long batches;
 * then calls of the estimated size, as a request makes them, are timed in
 * batches and the count is scaled by their median, twice. The fastest long
 * batch alone is not the cost of a request: on Deno it missed the garbage
 * collection of each round's hash objects, and the requests of the `cpu`
 * workload spent about twice their 200 µs.
 *
 * @param {number} targetUs
 * @returns {number}
 */
export function calibrateRounds(targetUs) {
  const batch = 2000;
  hashRounds(batch);
  let best = Infinity;
  for (let i = 0; i < 7; i++) {
    const used = process.cpuUsage();
    hashRounds(batch);
    const { user, system } = process.cpuUsage(used);
    best = Math.min(best, (user + system) / batch);
  }
  let rounds = Math.max(1, Math.round(targetUs / best));
  const calls = Math.max(50, Math.round(50_000 / targetUs));
  for (let refine = 0; refine < 2; refine++) {
    const perCall = [];
    for (let i = 0; i < 9; i++) {
      const used = process.cpuUsage();
      for (let c = 0; c < calls; c++) hashRounds(rounds);
      const { user, system } = process.cpuUsage(used);
      perCall.push((user + system) / calls);
    }
    perCall.sort((a, b) => a - b);
    rounds = Math.max(1, Math.round(rounds * targetUs / perCall[4]));
  }
  return rounds;
}

let cpuRounds = 0;

/**
 * Rounds per `/cpu` request. The harness calibrates each runtime once and
 * passes the count in YMO_BENCH_CPU_ROUNDS, so that every server on one
 * runtime does the same work; without it, an app calibrates itself to 200 us
 * on its first `/cpu` request.
 *
 * @returns {number}
 */
export function cpuRoundsPerRequest() {
  if (cpuRounds === 0) {
    cpuRounds = Number(process.env.YMO_BENCH_CPU_ROUNDS) ||
      calibrateRounds(200);
  }
  return cpuRounds;
}

/** The work behind `GET /cpu`: about 200 us of hashing, returned as hex. */
export function cpuWork() {
  return hashRounds(cpuRoundsPerRequest());
}
