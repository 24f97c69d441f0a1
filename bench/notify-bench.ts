// The supervisor's cost per call: a process makes getppid() calls that the kernel either allows
// itself (baseline) or hands to pg_seccomp's real supervisor worker (the one `run` uses, with
// classification and the policy's program), which lets them continue. Prints p50/p99 per call
// and the ratio, in the same run, alternating rounds. Needs root or the same user (pidfd_getfd).

import { spawn } from "node:child_process";
import { readdirSync, readlinkSync } from "node:fs";
import { MessageChannel, Worker } from "node:worker_threads";
import { encodeProgram } from "../src/bpf/insn.js";
import { close, pidfdGetFd, pidfdOpen } from "../src/kernel/index.js";
import { parsePolicyText } from "../src/policy/policy.js";
import { compose } from "../src/compile/compose.js";
import { hostArch, syscallNumber } from "../src/syscalls/index.js";
import type { SupervisorWorkerData } from "../src/supervisor/supervisor-worker.js";

const CALLS = Number(process.env.NOTIFY_CALLS ?? 20000);
const ROUNDS = Number(process.env.NOTIFY_ROUNDS ?? 5);
const arch = hostArch();

// getppid differs between contexts (sessions may not), so it goes to the supervisor; the
// measuring process is the "postmaster", which may: the supervisor answers CONTINUE.
const routed = parsePolicyText("global_syscall_default = allow\nsession_syscall_error = '*, getppid'\n", "bench.conf");
const direct = parsePolicyText("global_syscall_default = allow\n", "bench.conf");

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function measure(supervised: boolean): Promise<Float64Array> {
  const programs = compose(supervised ? routed : direct, arch);
  const child = spawn(process.execPath, [new URL("./notify-child.js", import.meta.url).pathname], { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
    while (out.includes("\n")) {
      const i = out.indexOf("\n");
      lines.push(out.slice(0, i));
      out = out.slice(i + 1);
      waiters.shift()?.();
    }
  });
  const nextLine = () => new Promise<string>((res) => (lines.length ? res(lines.shift()!) : waiters.push(() => res(lines.shift()!))));
  child.stdin!.write(JSON.stringify({ program: encodeProgram(programs.installed).toString("base64"), newListener: programs.usesSupervisor, calls: CALLS }) + "\n");
  await nextLine(); // ready
  let worker: Worker | undefined;
  const stop = new SharedArrayBuffer(4);
  if (programs.usesSupervisor) {
    const fd = readdirSync(`/proc/${child.pid}/fd`).find((f) => {
      try {
        return readlinkSync(`/proc/${child.pid}/fd/${f}`) === "anon_inode:seccomp notify";
      } catch {
        return false;
      }
    });
    const pidfd = pidfdOpen(child.pid!);
    const listenerFd = pidfdGetFd(pidfd, Number(fd));
    close(pidfd);
    // The caller is the "postmaster" here: nothing needs classifying, so the channel stays quiet.
    const channel = new MessageChannel();
    const wd: SupervisorWorkerData = {
      listenerFd, policy: routed, stagePid: child.pid!, execveNr: syscallNumber(arch, "execve")!, arch, stop,
      clientFilter: new SharedArrayBuffer(12), injecting: new SharedArrayBuffer(4), heartbeat: new SharedArrayBuffer(8), heartbeatOrigin: Date.now(), port: channel.port2,
      serverCode: { gateOnly: [], files: [] },
    };
    worker = new Worker(new URL("../src/supervisor/supervisor-worker.js", import.meta.url), { workerData: wd, transferList: [channel.port2] });
  }
  child.stdin!.write("go\n");
  const times = Float64Array.from(JSON.parse(await nextLine()) as number[]);
  Atomics.store(new Int32Array(stop), 0, 1);
  await worker?.terminate();
  child.stdin!.end();
  return times.sort();
}

const rows: Array<{ round: number; mode: string; p50: number; p99: number; mean: number }> = [];
for (let round = 1; round <= ROUNDS; round++) {
  const order = round % 2 ? [false, true] : [true, false];
  for (const supervised of order) {
    const t = await measure(supervised);
    const mean = t.reduce((a, b) => a + b, 0) / t.length;
    rows.push({ round, mode: supervised ? "supervisor" : "kernel", p50: quantile(t, 0.5), p99: quantile(t, 0.99), mean });
  }
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const k = rows.filter((r) => r.mode === "kernel");
const s = rows.filter((r) => r.mode === "supervisor");
const us = (ns: number) => (ns / 1000).toFixed(2);
console.log(`getppid() round trip, ${CALLS} calls x ${ROUNDS} rounds (medians over rounds), node ${process.version}`);
console.log("| decided by | p50 µs | p99 µs | mean µs |");
console.log("|---|--:|--:|--:|");
console.log(`| kernel (ALLOW) | ${us(med(k.map((r) => r.p50)))} | ${us(med(k.map((r) => r.p99)))} | ${us(med(k.map((r) => r.mean)))} |`);
console.log(`| supervisor (USER_NOTIF → CONTINUE) | ${us(med(s.map((r) => r.p50)))} | ${us(med(s.map((r) => r.p99)))} | ${us(med(s.map((r) => r.mean)))} |`);
console.log(`per-round supervisor/kernel p50 ratio: ${s.map((r, i) => (r.p50 / k[i]!.p50).toFixed(1)).join(", ")}`);
