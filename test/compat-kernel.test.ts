// On the kernel: a conditional entry takes only the calls it matches (docs/policy.md, "Argument
// conditions"). The README's `session_syscall_error = '*, execve, socket(arg0 == 16)'` denies
// netlink sockets in sessions and leaves other families to the inherited allow, in the session
// filter, a role's and a database's alike; the compiled programs are loaded into real processes.

import { test } from "node:test";
import assert from "node:assert/strict";
import { compilePolicy } from "../src/compile/compile.js";
import { parsePolicyText } from "../src/policy/policy.js";
import type { ContextSpec } from "../src/policy/decision.js";
import { hostArch, type Arch } from "../src/syscalls/index.js";
import { hostNr, probeSkip, runUnderFilter, showProbe } from "./support/kernel-probe.js";

const skip = probeSkip();
const arch: Arch = hostArch();
const nr = hostNr;

// EXFULL: no real call returns it, so an errno seen is the filter's.
const POLICY = `
syscall_error_errno = EXFULL
global_syscall_default = 'error'
global_syscall_allow = 'write, exit_group, rt_sigreturn, socket, close, getpid'
session_syscall_error = '*, execve, socket(arg0 == 16)'
session_roles = 'alice, "Bob"'
session_syscall_error.alice = '*, execve, socket(arg0 == 16)'
database_syscall_error.db1 = '*, socket(arg0 == 16)'
`;

const AF_UNIX = 1n, AF_INET = 2n, AF_NETLINK = 16n, SOCK_DGRAM = 2n, SOCK_RAW = 3n;

test("kernel: a conditional error entry denies only the calls it matches; others keep the inherited allow", { skip }, async () => {
  const policy = parsePolicyText(POLICY, "fallthrough.conf");
  const contexts: ContextSpec[] = [{ context: "session" }, { context: "session", role: "alice" }, { context: "session", role: "Bob" }, { context: "session", database: "db1" }];
  for (const ctx of contexts) {
    const run = await runUnderFilter(compilePolicy(policy, arch, ctx), [
      { nr: nr("socket"), args: [AF_UNIX, SOCK_DGRAM, 0n] },
      { nr: nr("socket"), args: [AF_INET, SOCK_DGRAM, 0n] },
      { nr: nr("socket"), args: [AF_NETLINK, SOCK_RAW, 0n] },
      { nr: nr("getuid") },
    ]);
    const label = JSON.stringify(ctx);
    assert.equal(run.outcome, "finished", `${label}: ${run.outcome} ${run.stderr}`);
    const [unix, inet, netlink, uid] = run.results;
    assert.equal(unix?.kind, "returned", `${label}: AF_UNIX ${showProbe(unix)}`);
    assert.equal(inet?.kind, "returned", `${label}: AF_INET`);
    assert.deepEqual(netlink?.kind === "errno" && netlink.code, "EXFULL", `${label}: AF_NETLINK`);
    assert.deepEqual(uid?.kind === "errno" && uid.code, "EXFULL", `${label}: getuid (the default)`);
  }
});
