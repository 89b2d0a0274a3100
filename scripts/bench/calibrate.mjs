// Prints how many SHA-256 rounds of the `cpu` workload take the given number
// of microseconds (default 200) in the runtime that runs this file:
//
//   deno run -A scripts/bench/calibrate.mjs 200
//   bun scripts/bench/calibrate.mjs 200
//   node scripts/bench/calibrate.mjs 200

import process from "node:process";
import { calibrateRounds } from "./_work.mjs";

const targetUs = Number(process.argv[2] ?? "200");
if (!(targetUs > 0)) throw new RangeError(`Bad target: ${process.argv[2]}`);
console.log(calibrateRounds(targetUs));
