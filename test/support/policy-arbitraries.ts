// Random policies, contexts and calls for property tests (fast-check): shared by the compiler's
// test (compile.test.ts) and the launcher's decision-path test, so both draw from the same space.

import fc from "fast-check";
import { X32_SYSCALL_BIT } from "../../src/seccomp/index.js";
import type { ContextSpec } from "../../src/policy/decision.js";
import { argWidth } from "../../src/policy/entries.js";
import { syscallNumber, type Arch } from "../../src/syscalls/index.js";

export const POOL = ["read", "write", "openat", "close", "mmap", "socket", "clone", "getpid", "getppid", "kill", "ioctl", "prctl", "futex", "mount", "ptrace", "personality", "execve", "getuid", "fcntl", "dup3", "pipe2", "uname", "madvise", "setuid", "bpf", "clone3"];
export const GROUPS = ["@mount", "@clock", "@network-io", "@privileged", "@keyring"];
export const VALUES = [0n, 1n, 2n, 16n, 0x5401n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 0x1ffffffffn, 0xffffffff00000001n, 0xffffffffffffffffn];
export const ACTIONS = ["allow", "log", "error", "error:EPERM", "kill", "trap"];
export const LISTS = ["allow", "log", "error", "kill", "trap"] as const;

export const valueArb = fc.oneof(fc.constantFrom(...VALUES), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }));
export const hex = (v: bigint) => "0x" + v.toString(16);
export const condArb = (syscall: string) => fc.record({
  arg: fc.integer({ min: 0, max: 3 }),
  width: fc.constantFrom("", ":64", ":32"),
  op: fc.constantFrom("==", "!=", "<", "<=", ">", ">=", "&"),
  value: valueArb,
  mask: valueArb,
}).map(({ arg, width, op, value, mask }) => {
  const bits = width === ":32" || (width === "" && argWidth(syscall, arg) === 32) ? 32n : 64n;
  const lim = (1n << bits) - 1n;
  const v = value & lim;
  if (op === "&") {
    const m = mask & lim;
    return `arg${arg}${width} & ${hex(m)} == ${hex(v & m)}`;
  }
  return `arg${arg}${width} ${op} ${hex(v)}`;
});
export const entryArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...POOL) },
  { weight: 1, arbitrary: fc.constantFrom(...GROUPS) },
  { weight: 3, arbitrary: fc.constantFrom(...POOL).chain((n) => fc.array(condArb(n), { minLength: 1, maxLength: 3 }).map((cs) => `${n}(${cs.join(", ")})`)) },
);

/** A random policy: lists drawn so that no syscall is unconditionally in two lists of a filter. */
export const filterArb = (prefix: string, allowStar: boolean, suffix = "") =>
  fc.record({
    def: fc.constantFrom(...ACTIONS),
    lists: fc.array(fc.tuple(fc.constantFrom(...LISTS), fc.array(entryArb, { maxLength: 6 }), fc.boolean()), { maxLength: 5 }),
  }).map(({ def, lists }) => {
    const seen = new Set<string>();
    const lines = [`${prefix}_syscall_default${suffix} = '${def}'`];
    const byList = new Map<string, string[]>();
    for (const [list, entries, star] of lists) {
      const kept = entries.filter((e) => {
        if (e.includes("(") || e.startsWith("@")) return true;
        if (seen.has(e)) return false;
        seen.add(e);
        return true;
      });
      const errnoed = list === "error" ? kept.map((e, i) => (i % 2 && !e.startsWith("@") ? `${e}:ENOSYS` : e)) : kept;
      byList.set(list, [...(allowStar && star ? ["*"] : []), ...errnoed]);
    }
    for (const [list, entries] of byList) lines.push(`${prefix}_syscall_${list}${suffix} = '${entries.join(", ")}'`);
    return lines.join("\n");
  });

export const overlayArb = (prefix: string, suffix = "") => fc.option(filterArb(prefix, true, suffix), { nil: undefined });
export const policyArb = fc
  .tuple(
    filterArb("global", false),
    overlayArb("session"),
    overlayArb("session", ".r1"),
    overlayArb("database", ".d1"),
    overlayArb("postmaster"),
    overlayArb("checkpointer"),
    fc.constantFrom("", "syscall_error_errno = EPERM", "syscall_unknown_action = default", "syscall_unknown_action = 'error:EAGAIN'"),
  )
  .map((parts) => parts.map((p) => p ?? "").join("\n"));

export const CONTEXTS: ContextSpec[] = [
  { context: "global" }, { context: "session" }, { context: "session", role: "r1" }, { context: "session", database: "d1" },
  { context: "session", role: "r1", database: "d1" }, { context: "postmaster" }, { context: "checkpointer" },
  { context: "unclassified" }, { context: "parallel_worker", role: "r1" }, { context: "walwriter" },
];

export const callArb = (arch: Arch) =>
  fc.record({
    nr: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...POOL.map((n) => syscallNumber(arch, n)!)) },
      { weight: 2, arbitrary: fc.integer({ min: 0, max: 520 }) },
      { weight: 1, arbitrary: fc.constantFrom(X32_SYSCALL_BIT, X32_SYSCALL_BIT + 1, 0xffffffff, 999999) },
    ),
    foreign: fc.integer({ min: 0, max: 30 }).map((n) => n === 0),
    args: fc.array(valueArb, { minLength: 6, maxLength: 6 }),
  });


/**
 * A policy with many contexts: global, the postmaster, sessions with two role overlays and a
 * database overlay, backend types, parallel workers. Each overlay is drawn or left out.
 */
export const contextPolicyArb = fc
  .tuple(
    filterArb("global", false),
    overlayArb("session"),
    overlayArb("session", ".r1"),
    overlayArb("session", ".r2"),
    overlayArb("database", ".d1"),
    overlayArb("postmaster"),
    overlayArb("checkpointer"),
    overlayArb("autovacuum_worker"),
    overlayArb("walsender"),
    overlayArb("parallel_worker"),
    fc.constantFrom("", "syscall_error_errno = EPERM", "syscall_unknown_action = default", "syscall_unknown_action = 'error:EAGAIN'"),
  )
  .map((parts) => parts.map((p) => p ?? "").join("\n"));

/** Contexts a supervisor may decide for, including ones the policy names nothing for. */
export const MANY_CONTEXTS: ContextSpec[] = [
  ...CONTEXTS,
  { context: "session", role: "r2" }, { context: "session", role: "r2", database: "d1" }, { context: "session", role: "nobody" },
  { context: "session", database: "other" }, { context: "parallel_worker" }, { context: "parallel_worker", role: "r2", database: "d1" },
  { context: "autovacuum_worker" }, { context: "walsender" }, { context: "background_writer" }, { context: "startup" },
];
