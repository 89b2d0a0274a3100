import { setImmediate as nodeSI } from "node:timers";
const SI = globalThis.setImmediate ?? nodeSI;
const ch = new MessageChannel();
let res = null;
ch.port1.onmessage = () => { const r = res; res = null; r(); };
const kinds = {
  timeout: () => new Promise((r) => setTimeout(r, 0)),
  immediate: () => new Promise((r) => SI(r)),
  nodeimmediate: () => new Promise((r) => nodeSI(r)),
  channel: () => new Promise((r) => { res = r; ch.port2.postMessage(0); }),
  micro: () => Promise.resolve(),
};
for (const [name, fn] of Object.entries(kinds)) {
  const n = name === "timeout" ? 500 : 100000;
  await fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  const dt = performance.now() - t0;
  console.log(`${name}: ${(dt * 1000 / n).toFixed(3)} us per yield`);
}
ch.port1.close();
