// The stage: a short-lived process that becomes the server's user, installs the filter and
// execs postgres, so that the filter is in place before the first instruction of postgres
// runs. It is started by `run` with a socket on fd 3 that carries its instructions, and it
// closes fd 3 before the filter goes on: after that it makes no syscall but execve (which the
// supervisor may be holding, see src/compile/compose.ts).

import { readSync, closeSync } from "node:fs";
import { decodeProgram } from "../bpf/insn.js";
import { becomeUser, execve, installFilter, prepareForExec, setNoNewPrivs, setParentDeathSignal } from "../kernel/index.js";

export interface StageInstructions {
  parentPid: number;
  /** Base64 of the raw program (sock_filter records). */
  program: string;
  newListener: boolean;
  specAllow: boolean;
  /** The policy sets seccomp = off: exec with no filter (and `program` empty). Only this skips it. */
  unfiltered?: boolean;
  user?: { name: string; uid: number; gid: number };
  /** Signal the server gets if the launcher dies (fail closed); 0 for none (postgres exec'd in place). */
  parentDeathSignal: number;
  path: string;
  argv: string[];
  env: string[];
}

const FD = 3;

/**
 * One line from the launcher's pipe on `fd` (the stage's and the in-place supervisor's
 * instructions): read synchronously, waiting briefly on EAGAIN, up to the first newline.
 */
export function readLineFromFd(fd: number): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        continue;
      }
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
    if (buf[n - 1] === 0x0a) break;
  }
  return Buffer.concat(chunks).toString("utf8");
}

function readInstructions(): StageInstructions {
  return JSON.parse(readLineFromFd(FD)) as StageInstructions;
}

function fail(message: string): never {
  process.stderr.write(`pg_seccomp: error: ${message}\n`);
  process.exit(111);
}

function main(): never {
  const ins = readInstructions();
  closeSync(FD);
  execUnderFilter(ins);
}

/**
 * Becomes the server's user, installs the filter and execs postgres. After the filter goes on,
 * the only syscall is execve. Used by the stage process, and by `run --in-place` in the
 * launcher itself (postgres then keeps the launcher's pid).
 */
export function execUnderFilter(ins: StageInstructions): never {
  if (ins.user) becomeUser(ins.user);
  if (ins.parentDeathSignal) {
    setParentDeathSignal(ins.parentDeathSignal);
    // The launcher may have died before the death signal was armed.
    if (process.ppid !== ins.parentPid) fail("the launcher exited before the server started");
  }
  const prog = decodeProgram(Buffer.from(ins.program, "base64"));
  prepareForExec({ inheritFds: [0, 1, 2] });
  if (ins.unfiltered !== true) {
    setNoNewPrivs();
    installFilter(prog, { newListener: ins.newListener, specAllow: ins.specAllow });
  }
  // From here on: only execve. Its arguments were prepared above; prepareForExec is done.
  execve(ins.path, ins.argv, ins.env, { inheritFds: [], resetSignals: false });
}

// Run as a program (the stage), not when imported (run --in-place).
if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  try {
    main();
  } catch (e) {
    fail((e as Error).message);
  }
}
