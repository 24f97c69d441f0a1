import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicyText } from "../policy/policy.js";
import { clientsNeedServerRow } from "./compose.js";

test("client processes need the server's row only when the policy tells them apart", () => {
  const p = (t: string) => parsePolicyText("global_syscall_default = allow\n" + t, "t.conf");
  assert.equal(clientsNeedServerRow(p("archiver_syscall_error = '*, execve'\n"), "x86_64"), false, "backend-type rules only");
  assert.equal(clientsNeedServerRow(p("session_syscall_error = '*, execve'\n"), "x86_64"), true, "sessions unlike walsenders");
  assert.equal(clientsNeedServerRow(p("session_syscall_error = '*, execve'\nwalsender_syscall_error = '*, execve'\n"), "x86_64"), false);
  assert.equal(clientsNeedServerRow(p("session_syscall_allow.alice = '*, execve'\n"), "x86_64"), true, "per-role rules");
  assert.equal(clientsNeedServerRow(p("database_syscall_error.db = '*, execve'\n"), "x86_64"), true, "per-database rules");
  assert.equal(clientsNeedServerRow(p("global_syscall_log = 'execve'\n"), "x86_64"), true, "logged calls say whose they were");
});

import { readFileSync } from "node:fs";
import { loadPolicyFile, type Policy } from "../policy/policy.js";
import { compose, CLIENT_FILTER_KNOCK, supervisorProgram } from "./compose.js";
import { compileFilter } from "../bpf/emulator.js";
import { AUDIT_ARCH_X86_64, dataFieldName, SECCOMP_RET_ALLOW, SECCOMP_RET_USER_NOTIF } from "../seccomp/index.js";
import { contextDecisions, decisionFor, sameDecision } from "../policy/decision.js";
import {
  BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W, type Insn,
} from "../bpf/insn.js";
import { allSyscalls, syscallNumber } from "../syscalls/index.js";
import { repoPath } from "../../test/support/paths.js";

const STARTER = repoPath("profiles/postgresql-15-x86_64.conf");

/**
 * Whether the kernel's constant-action cache can hold `nr`: the kernel's seccomp_is_const_allow()
 * (kernel/seccomp.c) walks the program with only arch and nr known and gives up at the first
 * load of anything else; the call is cached when that walk ends in RET ALLOW. Also returns the
 * field that stopped the walk, for messages.
 */
function constAllow(prog: readonly Insn[], audit: number, nr: number): { cached: boolean; reads?: string } {
  let a = 0;
  for (let pc = 0; pc < prog.length; ) {
    const ins = prog[pc]!;
    switch (ins.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (ins.k === 0) a = nr;
        else if (ins.k === 4) a = audit;
        else return { cached: false, reads: dataFieldName(ins.k) ?? `offset ${ins.k}` };
        pc++;
        break;
      case BPF_RET | BPF_K:
        return { cached: ins.k === SECCOMP_RET_ALLOW };
      case BPF_JMP | BPF_JA:
        pc += 1 + ins.k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K: pc += 1 + (a === ins.k ? ins.jt : ins.jf); break;
      case BPF_JMP | BPF_JGE | BPF_K: pc += 1 + (a >>> 0 >= ins.k >>> 0 ? ins.jt : ins.jf); break;
      case BPF_JMP | BPF_JGT | BPF_K: pc += 1 + (a >>> 0 > ins.k >>> 0 ? ins.jt : ins.jf); break;
      case BPF_JMP | BPF_JSET | BPF_K: pc += 1 + ((a & ins.k) !== 0 ? ins.jt : ins.jf); break;
      case BPF_ALU | BPF_AND | BPF_K: a = (a & ins.k) >>> 0; pc++; break;
      default:
        return { cached: false, reads: `opcode 0x${ins.code.toString(16)}` };
    }
  }
  return { cached: false };
}

/**
 * Syscalls the policy allows unconditionally that the installed program keeps out of the kernel's
 * cache, with what their path reads. execve goes to the supervisor by design when anything does
 * (the launch), and is left out.
 */
function uncachedAllows(policy: Policy, prog: readonly Insn[]): string[] {
  const cd = contextDecisions(policy, "x86_64", { context: "global" });
  const out: string[] = [];
  for (const s of allSyscalls("x86_64")) {
    const d = decisionFor(cd, s.nr);
    if (d.kind !== "leaf" || d.action.kind !== "allow" || s.name === "execve") continue;
    const r = constAllow(prog, AUDIT_ARCH_X86_64, s.nr);
    if (!r.cached) out.push(`${s.name} (reads ${r.reads ?? "nothing more, returns another action"})`);
  }
  return out;
}

const withClientFilter = (p: Policy): Policy => ({ ...p, clientFilter: true });

test("the starter profile: every path to ALLOW in the installed program reads only arch and nr (the kernel caches them)", () => {
  const policy = loadPolicyFile(STARTER);
  assert.equal(policy.clientFilter, undefined, "the starter profile leaves set_client_filter off");
  const c = compose(policy, "x86_64");
  assert.equal(c.clientFilterKnock, false);
  assert.deepEqual(uncachedAllows(policy, c.installed), []);
  const lseek = syscallNumber("x86_64", "lseek")!;
  assert.ok(!c.routed.some((r) => r.nr === lseek), "lseek is not routed");
  const run = compileFilter(c.installed);
  const knock = { nr: lseek, arch: 0xc000003e, instructionPointer: 0n, args: [3n, CLIENT_FILTER_KNOCK, 0n, 0n, 0n, 0n] };
  assert.equal(run(knock).ret, SECCOMP_RET_ALLOW, "the knock is a plain lseek");
  assert.ok(c.stats.cacheableAllows > 100, `${c.stats.cacheableAllows} unconditional allows`);
});

test("set_client_filter = on compiles the knock: that one lseek goes to the supervisor, every other lseek stays allowed", () => {
  const text = readFileSync(STARTER, "utf8") + "\nset_client_filter = on\n";
  const policy = parsePolicyText(text, "starter-with-client-filter.conf");
  assert.equal(policy.clientFilter, true);
  const c = compose(policy, "x86_64");
  assert.equal(c.clientFilterKnock, true);
  assert.equal(c.usesSupervisor, true);
  assert.deepEqual(uncachedAllows(policy, c.installed), ["lseek (reads args[1].hi)"], "lseek's ALLOW now reads its offset");
  const lseek = syscallNumber("x86_64", "lseek")!;
  assert.deepEqual(c.routed.find((r) => r.nr === lseek), { nr: lseek, name: "lseek", reasons: ["client-filter-knock"], conditional: true });
  const run = compileFilter(c.installed);
  const call = (offset: bigint) => run({ nr: lseek, arch: 0xc000003e, instructionPointer: 0n, args: [3n, offset, 0n, 0n, 0n, 0n] }).ret;
  assert.equal(call(CLIENT_FILTER_KNOCK), SECCOMP_RET_USER_NOTIF);
  assert.equal(call(0n), SECCOMP_RET_ALLOW);
  assert.equal(call(CLIENT_FILTER_KNOCK + 1n), SECCOMP_RET_ALLOW);
  // Everything else is what the policy alone installs.
  const off = compose(loadPolicyFile(STARTER), "x86_64");
  assert.deepEqual(c.routed.filter((r) => r.nr !== lseek && r.name !== "execve"), off.routed.filter((r) => r.name !== "execve"));
});

test("set_client_filter is a boolean setting, off by default", () => {
  const p = (t: string) => parsePolicyText("global_syscall_default = allow\n" + t, "t.conf");
  assert.equal(p("").clientFilter, undefined);
  assert.equal(p("set_client_filter = off\n").clientFilter, undefined);
  assert.equal(p("set_client_filter = on\n").clientFilter, true);
  assert.throws(() => p("set_client_filter = sometimes\n"), /t\.conf:2.*"sometimes" is not a boolean/s);
});

test("compose leaves the policy's decisions as they are, and its answer cannot be changed", () => {
  const policy = withClientFilter(parsePolicyText("global_syscall_default = allow\nglobal_syscall_error = 'execve'\nsession_syscall_error = '*, socket'\n", "t.conf"));
  const before = contextDecisions(policy, "x86_64", { context: "global" });
  const c = compose(policy, "x86_64");
  const after = contextDecisions(policy, "x86_64", { context: "global" });
  for (const nr of [...before.named.keys(), ...after.named.keys()]) assert.ok(sameDecision(before.named.get(nr)!.decision, after.named.get(nr)!.decision));
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.installed) && Object.isFrozen(c.routed) && Object.isFrozen(c.stats));
  assert.throws(() => (c.installed as Insn[]).push({ code: 6, jt: 0, jf: 0, k: 0 }), TypeError);
  // The installed program's decisions carry the refusals, the gate and the knock; the policy's own do not.
  const lseek = syscallNumber("x86_64", "lseek")!;
  const mmap = syscallNumber("x86_64", "mmap")!;
  assert.equal(c.installedDecisions.named.get(lseek)?.decision.kind, "branch");
  assert.equal(c.installedDecisions.named.get(mmap)?.decision.kind, "branch", "per-process contexts: the exec gate");
  assert.equal(before.named.has(lseek), false);
  // Why each call goes to the supervisor.
  const reasons = Object.fromEntries(c.routed.map((r) => [r.name, r.reasons]));
  assert.deepEqual(reasons.execve, ["launch", "logged"]);
  assert.deepEqual(reasons.socket, ["contexts-differ"]);
  assert.deepEqual(reasons.mmap, ["exec-gate"]);
  assert.deepEqual(reasons.lseek, ["client-filter-knock"]);
  // The supervisor's program for each context is the policy's own (with the refusals).
  assert.deepEqual(c.supervisorPrograms.get("session"), supervisorProgram(policy, "x86_64", { context: "session" }));
  assert.equal(c.stats.contexts, c.supervisorPrograms.size);
});

test("set_client_filter defaults: off for the seed's names, on in pgseccomp mode (pgseccomp always offers the function), and what is written wins", () => {
  const seed = "global_syscall_default = 'allow'\n";
  const pg = "pgseccomp.enabled = on\npgseccomp.global_syscall_default = 'allow'\n";
  assert.equal(parsePolicyText(seed, "seed.conf").clientFilter, undefined);
  assert.equal(parsePolicyText(pg, "pg.conf").clientFilter, true);
  assert.equal(compose(parsePolicyText(pg, "pg.conf"), "x86_64").clientFilterKnock, true);
  assert.equal(parsePolicyText(pg + "set_client_filter = off\n", "pg.conf").clientFilter, undefined);
  assert.equal(parsePolicyText(seed + "compat = pgseccomp\n", "c.conf").clientFilter, true);
});

test("the injected program holds the context's denials of routed calls only; execve, execveat and seccomp stay with the supervisor", async () => {
  const { injectedProgram } = await import("./compose.js");
  const policy = parsePolicyText(
    "global_syscall_default = allow\nglobal_syscall_kill = 'ptrace'\nsession_syscall_error = 'execve, getresuid, seccomp'\nsession_syscall_kill = 'mknod'\n",
    "inject.conf",
  );
  const installed = compose(policy, "x86_64", { contexts: [] });
  const run = compileFilter(injectedProgram(policy, "x86_64", { context: "session" }, installed)!);
  const ret = (name: string) => run({ nr: syscallNumber("x86_64", name)!, arch: AUDIT_ARCH_X86_64, instructionPointer: 0n, args: [0n, 0n, 0n, 0n, 0n, 0n] }).ret;
  assert.equal(ret("getresuid") >>> 16, 0x0005, "a session's error, in the kernel (ERRNO)");
  assert.equal(ret("mknod") >>> 0, 0x80000000, "a session's kill, in the kernel (KILL_PROCESS)");
  for (const name of ["execve", "seccomp", "read"]) assert.equal(ret(name) >>> 0, SECCOMP_RET_ALLOW, `${name}: left to the installed program`);
  assert.equal(ret("ptrace") >>> 0, SECCOMP_RET_ALLOW, "decided alike for all contexts by the installed program: no second copy");
  assert.equal(injectedProgram(policy, "x86_64", { context: "checkpointer" }, installed), undefined, "a context that denies nothing routed: nothing to inject");
});
