// Child of notify-bench: installs the filter it is given on its main thread, says "ready",
// waits for "go", then times N calls of getppid() and prints the per-call nanoseconds.

import { readSync } from "node:fs";
import { decodeProgram } from "../src/bpf/insn.js";
import { installFilter, rawSyscall, setNoNewPrivs, hostKernelArch } from "../src/kernel/index.js";

function readLine(): string {
  const buf = Buffer.alloc(1 << 20);
  let text = "";
  for (;;) {
    let n = 0;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") continue;
      throw e;
    }
    if (n === 0) return text;
    text += buf.toString("utf8", 0, n);
    if (text.includes("\n")) return text.split("\n")[0]!;
  }
}

const { program, newListener, calls } = JSON.parse(readLine()) as { program: string; newListener: boolean; calls: number };
const nr = hostKernelArch().nr.getppid;
const call = rawSyscall();
// Warm up the call path before the filter goes on.
for (let i = 0; i < 1000; i++) call(nr, 0n, 0n, 0n, 0n, 0n, 0n);
setNoNewPrivs();
installFilter(decodeProgram(Buffer.from(program, "base64")), { newListener });
process.stdout.write("ready\n");
readLine();
const times = new Float64Array(calls);
for (let i = 0; i < calls; i++) {
  const t0 = process.hrtime.bigint();
  call(nr, 0n, 0n, 0n, 0n, 0n, 0n);
  times[i] = Number(process.hrtime.bigint() - t0);
}
process.stdout.write(JSON.stringify(Array.from(times)) + "\n");
