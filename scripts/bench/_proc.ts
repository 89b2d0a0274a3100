/**
 * CPU time and memory of a server, read from /proc. A server is measured as
 * its whole process group (the harness starts each one as a group leader), so
 * every thread and every child process (cluster workers, reusePort copies)
 * counts.
 *
 * @module
 */

import { readdirSync, readFileSync } from "node:fs";
import { execFile, execFileSync, spawnSync } from "node:child_process";

/** What /proc says about one process group at one moment. */
export interface GroupSample {
  /** utime + stime of every live process in the group, all threads, in s. */
  cpuSeconds: number;
  /** VmHWM (peak resident set) summed over the group's processes, in KiB. */
  peakRssKiB: number;
  /** VmRSS summed over the group's processes, in KiB. */
  rssKiB: number;
  /** How many processes the group had. */
  processes: number;
  /** Voluntary and involuntary context switches of every thread so far. */
  switches: number;
  /** The group's process ids. */
  pids: number[];
}

let ticksPerSecond = 0;

function clockTicks(): number {
  if (ticksPerSecond === 0) {
    try {
      ticksPerSecond =
        Number(execFileSync("getconf", ["CLK_TCK"]).toString()) ||
        100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null; // The process ended between readdir and read.
  }
}

/**
 * Fields 3.. of /proc/<pid>/stat (state, ppid, pgrp, ...): the command name in
 * field 2 may hold spaces and parentheses, so split after the last ')'.
 */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

function statusKiB(status: string, key: string): number {
  const match = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
  return match ? Number(match[1]) : 0;
}

/** Context switches of every thread of process `pid` so far. */
function threadSwitches(pid: string): number {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  let sum = 0;
  for (const tid of tasks) {
    const status = readOrNull(`/proc/${pid}/task/${tid}/status`);
    if (status === null) continue;
    for (
      const key of ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
    ) {
      const match = status.match(new RegExp(`^${key}:\\s+(\\d+)`, "m"));
      if (match) sum += Number(match[1]);
    }
  }
  return sum;
}

/** Samples every process whose process group is `pgid`. */
export function sampleGroup(pgid: number): GroupSample {
  const sample: GroupSample = {
    cpuSeconds: 0,
    peakRssKiB: 0,
    rssKiB: 0,
    processes: 0,
    switches: 0,
    pids: [],
  };
  let ticks = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readOrNull(`/proc/${entry}/stat`);
    if (stat === null) continue;
    const fields = statFields(stat);
    // fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
    if (Number(fields[2]) !== pgid) continue;
    if (fields[0] === "Z") continue;
    const status = readOrNull(`/proc/${entry}/status`);
    if (status === null) continue;
    ticks += Number(fields[11]) + Number(fields[12]);
    sample.peakRssKiB += statusKiB(status, "VmHWM");
    sample.rssKiB += statusKiB(status, "VmRSS");
    sample.processes++;
    sample.switches += threadSwitches(entry);
    sample.pids.push(Number(entry));
  }
  sample.cpuSeconds = ticks / clockTicks();
  return sample;
}

/**
 * utime + stime of process `pid`, all its threads, so far, in s; 0 when it
 * has ended. For a load client that is still running when the measured part
 * ends (ws_load), whose time is not yet among this process's reaped children.
 */
export function processCpuSeconds(pid: number): number {
  const stat = readOrNull(`/proc/${pid}/stat`);
  if (stat === null) return 0;
  const fields = statFields(stat);
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

/** CPU time of the whole machine, in s, from the first line of /proc/stat. */
export interface MachineSample {
  /**
   * Time all CPUs spent in user and system mode, plus time stolen by the
   * hypervisor. Interrupt and softirq time is left out: the kernel may count
   * it apart from the process it serves, and loopback traffic between wrk and
   * the server is mostly softirq work.
   */
  busySeconds: number;
  /** utime + stime + cutime + cstime of this process: its own work plus
   * that of children it has reaped, such as a finished wrk. */
  selfAndReapedSeconds: number;
}

/** Samples /proc/stat and /proc/self/stat. */
export function sampleMachine(): MachineSample {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0].trim()
    .split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is inside user).
  const busy = cpu[0] + cpu[1] + cpu[2] + (cpu[7] ?? 0);
  const self = statFields(readFileSync("/proc/self/stat", "utf8"));
  // Fields 14-17: utime, stime, cutime, cstime.
  const mine = Number(self[11]) + Number(self[12]) + Number(self[13]) +
    Number(self[14]);
  return {
    busySeconds: busy / clockTicks(),
    selfAndReapedSeconds: mine / clockTicks(),
  };
}

/** Whether `perf stat` can count system calls here (root, linux-perf). */
export function canCountSyscalls(): boolean {
  // perf stat reports on stderr.
  const run = spawnSync(
    "perf",
    ["stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "true"],
    { encoding: "utf8", timeout: 10_000 },
  );
  return run.status === 0 && parseSyscalls(run.stderr ?? "") !== null;
}

function parseSyscalls(text: string): number | null {
  for (const line of text.split("\n")) {
    const fields = line.split(",");
    if (fields[2] === "raw_syscalls:sys_enter" && /^\d+$/.test(fields[0])) {
      return Number(fields[0]);
    }
  }
  return null;
}

/**
 * Counts the system calls made by every thread of `pids` over the next
 * `seconds`, with `perf stat`; resolves to null when perf cannot count them.
 */
export function countSyscalls(
  pids: number[],
  seconds: number,
): Promise<number | null> {
  return new Promise((resolve) => {
    execFile(
      "perf",
      [
        "stat",
        "-x",
        ",",
        "-e",
        "raw_syscalls:sys_enter",
        "-p",
        pids.join(","),
        "--",
        "sleep",
        String(seconds),
      ],
      { encoding: "utf8", timeout: (seconds + 15) * 1000 },
      (_error, stdout, stderr) => resolve(parseSyscalls(`${stdout}${stderr}`)),
    );
  });
}
