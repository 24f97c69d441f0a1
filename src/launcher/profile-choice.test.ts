import { test } from "node:test";
import assert from "node:assert/strict";
import type { RunRequest } from "./run.js";
import { nearestMajor } from "./profile-choice.js";
import { ioUringNotes, jitNotes } from "./server-features.js";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { parsePolicyText } from "../policy/policy.js";

const req = (text: string): RunRequest => ({
  policy: parsePolicyText(text, "p.conf"), policyPath: "p.conf", arch: "x86_64", command: [], specAllow: false, insecurePolicyPermissions: false, say: () => {},
});
const base = "global_syscall_default = 'error'\nglobal_syscall_allow = 'read, write'\n";

test("the nearest bundled major: the same, else the closest, the older on a tie", () => {
  assert.equal(nearestMajor([14, 15, 16, 17, 18], 16), 16);
  assert.equal(nearestMajor([14, 15, 16, 17, 18], 19), 18);
  assert.equal(nearestMajor([14, 15, 16, 17, 18], 12), 14);
  assert.equal(nearestMajor([15, 17], 16), 15);
});

test("io_uring: denied unless the server's io_method asks for it, then allowed with a loud note", () => {
  // A policy without io_uring, a server without it: nothing to say.
  assert.deepEqual(ioUringNotes(req(base), 18, "worker"), []);
  assert.deepEqual(ioUringNotes(req(base), 15, undefined), []);
  // A server that uses io_uring under a policy that denies it would fail at start: refused.
  assert.throws(() => ioUringNotes(req(base), 18, "io_uring"), /io_method = io_uring .* does not allow io_uring_setup, io_uring_enter, io_uring_register/);
  const withRing = base.replace("read, write", "read, write, io_uring_setup, io_uring_enter, io_uring_register");
  const [note] = ioUringNotes(req(withRing), 18, "io_uring");
  assert.match(note!, /^WARNING: io_method = io_uring: .* not filtered per call/);
  // A policy that allows io_uring for a server that does not use it: loud.
  assert.match(ioUringNotes(req(withRing), 18, "worker")[0]!, /^WARNING: p.conf allows io_uring_setup, io_uring_enter, io_uring_register, but the server does not use io_uring \(io_method = worker\)/);
  assert.match(ioUringNotes(req(withRing), 16, undefined)[0]!, /PostgreSQL 16 has no io_uring support/);
  // A default of allow lets them through too.
  assert.equal(ioUringNotes(req("global_syscall_default = 'allow'\n"), 18, "sync").length, 1);
  // A default of log (a learning run, an audit-only policy) logs them like every call it does not
  // name: no warning to remove what it never named; named in its log list, they are warned about.
  assert.deepEqual(ioUringNotes(req("global_syscall_default = 'log'\n"), 18, "worker"), []);
  assert.deepEqual(ioUringNotes(req("global_syscall_default = 'log'\n"), 16, undefined), []);
  assert.match(ioUringNotes(req("global_syscall_default = 'error'\nglobal_syscall_log = 'io_uring_setup'\n"), 18, "worker")[0]!, /allows io_uring_setup, but/);
  // With io_method = io_uring, a log default lets the server start (and the loud note stays).
  assert.match(ioUringNotes(req("global_syscall_default = 'log'\n"), 18, "io_uring")[0]!, /^WARNING: io_method = io_uring/);
});

test("JIT: said before start when the server would JIT; a policy that keeps W^X from sessions gets a warning, one that allows PROT_EXEC a note", () => {
  const dir = mkdtempSync("/tmp/pg_seccomp-jit-");
  try {
    mkdirSync(`${dir}/bin`);
    mkdirSync(`${dir}/lib`);
    const postgres = `${dir}/bin/postgres`;
    writeFileSync(postgres, "");
    const open = "global_syscall_default = 'allow'\n";
    assert.deepEqual(jitNotes(req(open), postgres, "on"), [], "no llvmjit.so: the server cannot JIT");
    writeFileSync(`${dir}/lib/llvmjit.so`, "");
    assert.deepEqual(jitNotes(req(open), postgres, "off"), []);
    assert.deepEqual(jitNotes(req(open), postgres, undefined), [], "not readable: nothing said");
    assert.match(jitNotes(req(open), postgres, "on")[0]!, /^note: jit = on .* sessions may make memory executable/);
    const wx = "global_syscall_default = 'allow'\nsession_syscall_error = '*, mprotect(arg2 & 4 == 4)'\n";
    assert.match(jitNotes(req(wx), postgres, "on")[0]!, /^WARNING: jit = on .* denies sessions mprotect with PROT_EXEC \(W\^X\): every JIT compile will fail/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
