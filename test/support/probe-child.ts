// Probe child: installs a seccomp filter on its own main thread, issues syscalls, and reports
// each result to the parent over fd 3 immediately. Spawned by test/support/kernel-probe.ts;
// reads a ProbeSpec (JSON) from stdin.
//
// After the filter is installed the main thread does as little as possible:
//   - each call is one synchronous koffi call of libc syscall() with the same variadic shape
//     (long, 6 x uint64_t) as every other call here, so koffi reuses its cached call descriptor;
//   - each report is a 32-byte record written from one preallocated buffer with a raw write(2)
//     (through the same syscall() shape), so reporting needs only `write`;
//   - the final exit is exit_group(2) directly (no Node teardown), so it needs only `exit_group`;
//   - the young generation was emptied by gc() just before installing and the loop allocates a
//     few dozen bytes per call, so no scavenge (mmap/madvise/futex) should run in the window;
//   - the parent runs us with PROBE_NODE_FLAGS (kernel-probe.ts): no JIT code installation
//     (mprotect), no GC helper threads to wake (futex), a semi-space large enough for the run.
// A trap (SECCOMP_RET_TRAP) runs the koffi SIGSYS handler, whose return needs rt_sigreturn.
// A filter that refuses any of these gets "killed"/"incomplete" results, never wrong ones.

import { readFileSync } from "node:fs";
import {
  SIGSYS_COUNT,
  SIGSYS_DATA,
  SIGSYS_SYSCALL,
  addressOf,
  hostKernelArch,
  installFilter,
  installSigsysRecorder,
  lastErrno,
  rawSyscall,
  setDumpable,
  setErrno,
  setNoNewPrivs,
  u64,
  KernelError,
} from "../../src/kernel/index.js";
import {
  EXIT_BAD_SPEC,
  EXIT_INSTALL_FAILED,
  EXIT_REPORT_FAILED,
  RECORD_DONE,
  RECORD_HELLO,
  RECORD_INSTALL_FAILED,
  RECORD_READY,
  RECORD_RESULT,
  RECORD_SIZE,
  type ProbeSpec,
} from "./kernel-probe.js";

const REPORT_FD = 3n;

const arch = hostKernelArch();
const NR_WRITE = arch.nr.write;
const NR_EXIT_GROUP = arch.nr.exit_group;

let spec: ProbeSpec;
try {
  spec = JSON.parse(readFileSync(0, "utf8")) as ProbeSpec;
} catch (e) {
  process.stderr.write(`probe-child: bad spec on stdin: ${(e as Error).message}\n`);
  process.exit(EXIT_BAD_SPEC);
}

const sys = rawSyscall();
const record = Buffer.alloc(RECORD_SIZE);
const recordAddr = addressOf(record);
const recordLen = BigInt(RECORD_SIZE);

// Arguments converted up front: one array of six unsigned bigints per call.
const nrs: number[] = [];
const argv: bigint[][] = [];
for (const c of spec.calls) {
  nrs.push(c.nr);
  const a = [0n, 0n, 0n, 0n, 0n, 0n];
  c.args.slice(0, 6).forEach((s, i) => (a[i] = u64(BigInt(s))));
  argv.push(a);
}

function exitNow(code: number): never {
  sys(NR_EXIT_GROUP, BigInt(code), 0n, 0n, 0n, 0n, 0n);
  // Unreachable unless exit_group itself was refused; die the hard way.
  process.abort();
}

function send(kind: number, index: number, r: number | bigint, errno: number, trapped: number, data: number, trapNr: number): void {
  record.writeUInt32LE(kind, 0);
  record.writeInt32LE(index, 4);
  if (typeof r === "bigint") {
    record.writeBigUInt64LE(BigInt.asUintN(64, r), 8);
  } else {
    // ToUint32 is exact for any integral double; the high half needs arithmetic only when
    // the value does not fit in 32 bits (avoids allocating a HeapNumber in the common case).
    record.writeUInt32LE(r >>> 0, 8);
    record.writeUInt32LE(r >= 0 && r <= 0xffffffff ? 0 : r < 0 && r >= -0x80000000 ? 0xffffffff : Math.floor(r / 4294967296) >>> 0, 12);
  }
  record.writeInt32LE(errno, 16);
  record.writeInt32LE(trapped, 20);
  record.writeInt32LE(data, 24);
  record.writeInt32LE(trapNr, 28);
  const w = sys(NR_WRITE, REPORT_FD, recordAddr, recordLen, 0n, 0n, 0n);
  if (w !== RECORD_SIZE && w !== BigInt(RECORD_SIZE)) exitNow(EXIT_REPORT_FAILED);
}

const traps = installSigsysRecorder().state;

/** Issue call `i` (or getpid for the warm-up, i = -1) and report it. */
function issue(kind: number, i: number, nr: number, a: bigint[]): void {
  const before = traps[SIGSYS_COUNT]!;
  setErrno(0);
  const r = sys(nr, a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!);
  const errno = r === -1 ? lastErrno() : 0;
  const trapped = traps[SIGSYS_COUNT]! !== before ? 1 : 0;
  send(kind, i, r, errno, trapped, trapped ? traps[SIGSYS_DATA]! : 0, trapped ? traps[SIGSYS_SYSCALL]! : 0);
}

// No core files from KILL_PROCESS / unhandled SIGSYS.
setDumpable(false);
if (spec.noNewPrivs) setNoNewPrivs();

const prog = spec.prog.map(([code, jt, jf, k]) => ({ code, jt, jf, k }));
const warm = [0n, 0n, 0n, 0n, 0n, 0n];
// Warm up every function the window uses (bytecode compiled, feedback allocated) twice.
issue(RECORD_HELLO, -1, arch.nr.getpid, warm);
issue(RECORD_HELLO, -1, arch.nr.getpid, warm);

const gc = (globalThis as { gc?: () => void }).gc;
if (gc) gc();

// ---- the window starts when the seccomp syscall inside installFilter returns ----
let listener: number;
try {
  listener = installFilter(prog, { newListener: spec.newListener });
} catch (e) {
  const errno = e instanceof KernelError ? e.errno : 0;
  process.stderr.write(`probe-child: ${(e as Error).message}\n`);
  send(RECORD_INSTALL_FAILED, -1, -1, errno, 0, 0, 0);
  exitNow(EXIT_INSTALL_FAILED);
}
send(RECORD_READY, -1, listener, 0, 0, 0, 0);
for (let i = 0; i < nrs.length; i++) issue(RECORD_RESULT, i, nrs[i]!, argv[i]!);
send(RECORD_DONE, -1, 0, 0, 0, 0, 0);
exitNow(0);
