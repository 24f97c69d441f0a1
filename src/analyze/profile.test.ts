import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { composeProfile, mapNames, parseFloor, parseSeenEvidence, settingList, STATIC_ONLY_WITHHELD, type ProfileInput } from "./profile.js";
import type { AnalyzeResult, SyscallFinding } from "./analyze.js";
import { parsePolicyText } from "../policy/policy.js";
import { writePolicyText } from "../policy/write.js";
import { assertRoundTrip } from "../../test/support/policy-round-trip.js";
import { compilePolicy } from "../compile/compile.js";
import { emulate } from "../bpf/emulator.js";
import { AUDIT_ARCH, retAction, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_LOG } from "../seccomp/index.js";
import { expandGroup } from "../syscalls/groups.js";
import { syscallNumber, type Arch } from "../syscalls/index.js";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");
const floorText = readFileSync(resolve(ROOT, "profiles/floor.conf"), "utf8");

function finding(arch: Arch, name: string, fn = name, path?: string[]): SyscallFinding {
  return {
    name, number: syscallNumber(arch, name)!, reach: path ? "call-path" : "no-direct-path", sites: 1,
    via: [{ binary: "libc.so.6", function: fn, address: "0x10", kind: "trap", reach: path ? "call-path" : "no-direct-path", ...(path ? { path } : {}) }],
  };
}

function analysis(arch: Arch, syscalls: SyscallFinding[]): AnalyzeResult {
  return {
    arch, binaries: [], missing: [], syscalls, unresolved: [], notes: [],
    stats: { files: 1, codeBytes: 0, seconds: 0, cachedFiles: 0, callPathSyscalls: 0 },
  };
}

/** What the global filter of `text` answers for a call on `arch` (action bits only). */
function answer(text: string, arch: Arch, name: string, args: bigint[] = [0n, 0n, 0n, 0n, 0n, 0n], auditArch = AUDIT_ARCH[arch]): number {
  const prog = compilePolicy(parsePolicyText(text, "p.conf"), arch, { context: "global" });
  const nr = syscallNumber(arch, name);
  assert.ok(nr !== undefined, `${name} on ${arch}`);
  return retAction(emulate(prog, { nr, arch: auditArch, instructionPointer: 0n, args: [...args, 0n, 0n, 0n, 0n, 0n, 0n].slice(0, 6) }).ret);
}

test("the floor: every call has a reason; a call without one is refused", () => {
  const f = parseFloor(floorText);
  assert.ok(f.allow.length > 50);
  for (const n of f.allow) assert.ok(f.reasons.get(f.tagOf.get(n)!), n);
  assert.equal(f.tagOf.get("brk"), "malloc");
  assert.equal(f.tagOf.get("sync_file_range"), "flush");
  const broken = floorText.replace("global_syscall_allow = '", "global_syscall_allow = 'kcmp, ");
  assert.throws(() => parseFloor(broken), /no "# \[tag\] name: why" line for kcmp/);
});

test("names carried to aarch64: equivalents where aarch64 lacks a call, dropped where there is none", () => {
  const m = mapNames(["openat", "stat", "pipe", "fork", "arch_prctl"], "aarch64");
  assert.deepEqual(m.mapped.get("openat"), ["openat"]);
  assert.deepEqual(m.mapped.get("newfstatat"), ["stat"]);
  assert.deepEqual(m.mapped.get("pipe2"), ["pipe"]);
  assert.deepEqual(m.mapped.get("clone"), ["fork"]);
  assert.deepEqual(m.dropped, ["arch_prctl"]);
  assert.equal(mapNames(["stat"], "x86_64").mapped.get("stat")?.[0], "stat");
});

test("compose: seen ∪ floor allowed, static-only logged, nothing reachable killed, gated features kept out, evidence per call", () => {
  const input = {
    arch: "x86_64" as const,
    learned: new Map([["read", ["r1"]], ["write", ["r1", "r2"]]]),
    learnedLegend: new Map([["r1", "round 1"], ["r2", "round 2"]]),
    floor: new Map([["brk", "malloc"]]),
    floorReasons: new Map([["malloc", "malloc and free"], ["unused", "not shown"]]),
    analysis: analysis("x86_64", [
      finding("x86_64", "read", "read", ["postgres:main", "libc.so.6:read"]),
      finding("x86_64", "brk", "brk", ["postgres:fn@0x1", "libc.so.6:free", "libc.so.6:sbrk", "libc.so.6:brk"]),
      finding("x86_64", "sendfile"),
      finding("x86_64", "mount"),
      finding("x86_64", "chown", "chown", ["postgres:main", "libc.so.6:chown"]),
      finding("x86_64", "create_module"),
      finding("x86_64", "io_uring_setup"),
    ]),
    staticOnly: "log" as const,
    kill: "@mount, @reboot, @chown, @obsolete",
    harden: "all",
    header: ["test profile"],
  };
  const c = composeProfile(input);
  assert.deepEqual(c.allow, ["brk", "read", "write"]);
  assert.deepEqual(c.staticOnly, ["sendfile"]);
  // Reachable members of the killed groups: logged (chown), or denied by name with the errno the
  // kernel gives the server's user anyway (mount: EPERM; create_module: ENOSYS). Never killed.
  assert.deepEqual(c.groupLogged, ["chown"]);
  assert.deepEqual(c.groupDenied, ["create_module:ENOSYS", "mount"]);
  assert.deepEqual(c.killedStatic, []);
  assert.ok(c.killed.includes("umount2") && c.killed.includes("reboot") && c.killed.includes("fchown"), c.killed.join(", "));
  assert.ok(!c.killed.includes("mount") && !c.killed.includes("chown"));
  assert.deepEqual(c.withheldStatic, ["io_uring_setup"]);
  assert.equal(c.counts.learnedNotStatic, 1);
  assert.deepEqual(settingList(c.text, "global_syscall_log"), ["chown", "sendfile"]);
  assert.deepEqual(settingList(c.text, "global_syscall_error"), ["create_module:ENOSYS", "mount"]);
  assert.match(c.text, /^#   brk: floor \[malloc\]; static libc\.so\.6:brk <- postgres via libc\.so\.6:free$/m);
  assert.match(c.text, /^#   write: seen \[r1\]\[r2\]; not found statically$/m);
  assert.match(c.text, /^#   sendfile: static libc\.so\.6:sendfile \(no direct call path\)$/m);
  assert.match(c.text, /^#   mount: static libc\.so\.6:mount \(no direct call path\) \(in @mount; needs a capability the server never has: EPERM, as unfiltered\)$/m);
  assert.match(c.text, /^#   chown: static libc\.so\.6:chown <- postgres \(in @chown\)$/m);
  assert.match(c.text, /^# Killed \(\d+\): /m);
  assert.match(c.text, /^#   @mount: .*\bumount2\b/m);
  assert.match(c.text, /^#   floor \[malloc\]: malloc and free$/m);
  assert.doesNotMatch(c.text, /not shown/, "only the floor reasons in use");
  assert.match(c.text, /^# arch: x86_64$/m);
  // One evidence line per allowed or logged call.
  for (const n of [...c.allow, ...c.staticOnly, ...c.groupLogged]) assert.equal([...c.text.matchAll(new RegExp(`^#   ${n}:`, "gm"))].length, 1, n);
  // What the kernel would answer.
  assert.equal(answer(c.text, "x86_64", "read"), SECCOMP_RET_ALLOW);
  assert.equal(answer(c.text, "x86_64", "brk"), SECCOMP_RET_ALLOW);
  assert.equal(answer(c.text, "x86_64", "sendfile"), SECCOMP_RET_LOG);
  assert.equal(answer(c.text, "x86_64", "chown"), SECCOMP_RET_LOG);
  assert.equal(answer(c.text, "x86_64", "mount"), SECCOMP_RET_ERRNO);
  assert.equal(answer(c.text, "x86_64", "create_module"), SECCOMP_RET_ERRNO);
  assert.equal(answer(c.text, "x86_64", "umount2"), SECCOMP_RET_KILL_PROCESS, "unreachable: killed");
  assert.equal(answer(c.text, "x86_64", "fchown"), SECCOMP_RET_KILL_PROCESS, "unreachable: killed");
  assert.equal(answer(c.text, "x86_64", "io_uring_setup"), SECCOMP_RET_ERRNO);
  assert.equal(answer(c.text, "x86_64", "splice"), SECCOMP_RET_ERRNO);
  // The seen evidence reads back (a profile rebuilt from itself keeps it).
  const ev = parseSeenEvidence(c.text);
  assert.deepEqual(ev.seen.get("write"), ["r1", "r2"]);
  assert.equal(ev.legend.get("r2"), "round 2");
  assert.equal(ev.seen.has("brk"), false);
  // --static-only allow: in the allow list, no log list.
  const a = composeProfile({ ...input, staticOnly: "allow" });
  assert.deepEqual(settingList(a.text, "global_syscall_log"), ["chown"], "only the reachable members of killed groups");
  assert.ok(settingList(a.text, "global_syscall_allow")!.includes("sendfile"));
  assert.equal(answer(a.text, "x86_64", "sendfile"), SECCOMP_RET_ALLOW);
  assert.equal(answer(a.text, "x86_64", "mount"), SECCOMP_RET_ERRNO);
  assert.equal(answer(a.text, "x86_64", "chown"), SECCOMP_RET_LOG, "a reachable member of a killed group is logged in either mode");
  // Names must exist on the arch.
  assert.throws(() => composeProfile({ ...input, arch: "aarch64", learned: new Map([["stat", ["r1"]]]), analysis: analysis("aarch64", []) }), /"stat" is not an aarch64 syscall/);
});

const PROFILES = resolve(ROOT, "profiles");
const bundled = readdirSync(PROFILES)
  .map((n) => /^postgresql-(\d+)-(x86_64|aarch64)\.conf$/.exec(n))
  .filter((m) => m !== null)
  .map((m) => ({ file: m[0], major: Number(m[1]), arch: m[2] as Arch }));

test("bundled profiles: 14-18 on x86_64, 15-18 on aarch64", () => {
  assert.deepEqual(bundled.filter((b) => b.arch === "x86_64").map((b) => b.major).sort(), [14, 15, 16, 17, 18]);
  assert.deepEqual(bundled.filter((b) => b.arch === "aarch64").map((b) => b.major).sort(), [15, 16, 17, 18]);
});

for (const b of bundled) {
  test(`${b.file}: evidence for every call, the floor allowed, nothing gated logged, nothing reachable killed`, () => {
    const text = readFileSync(resolve(PROFILES, b.file), "utf8");
    assert.match(text, new RegExp(`^# arch: ${b.arch}$`, "m"));
    const allow = settingList(text, "global_syscall_allow")!;
    const log = settingList(text, "global_syscall_log") ?? [];
    assert.ok(allow.length > 100 && log.length > 50, `${allow.length} allowed, ${log.length} logged`);
    for (const n of [...allow, ...log]) assert.equal([...text.matchAll(new RegExp(`^#   ${n}: (seen|floor|static)`, "gm"))].length, 1, `one evidence line for ${n}`);
    const floor = mapNames(parseFloor(floorText).allow, b.arch);
    for (const n of floor.mapped.keys()) assert.ok(allow.includes(n), `floor call ${n}`);
    const denied = (settingList(text, "global_syscall_error") ?? []).map((e) => e.replace(/:.*/, ""));
    for (const n of denied) assert.equal([...text.matchAll(new RegExp(`^#   ${n}: static .*\\(in @[a-z-]+; `, "gm"))].length, 1, `one evidence line for ${n}`);
    for (const n of log) assert.ok(!STATIC_ONLY_WITHHELD.includes(n), `${n} is a gated feature`);
    // Issue 17: what the kill list kills (its groups less every name another list holds) has no static evidence.
    const named = new Set([...allow, ...log, ...denied]);
    const killed = settingList(text, "global_syscall_kill")!.flatMap((g) => expandGroup(g, b.arch).syscalls).filter((n) => !named.has(n));
    assert.ok(killed.includes("kexec_load"), "unreachable high-risk calls stay killed");
    for (const n of killed) assert.doesNotMatch(text, new RegExp(`^#   ${n}[ :].*\\bstatic `, "m"), `${n} is reachable and killed`);
    for (const n of ["chown", "fchownat", "keyctl"]) if (b.arch === "x86_64" || n !== "chown") assert.ok(allow.includes(n), `${n}: the floor (archive tools, KEYRING: caches)`);
    if (b.arch === "aarch64") assert.match(text, /NOT RUN ON AARCH64 HARDWARE/);
    parsePolicyText(text, b.file); // parses
  });
}

test("aarch64 profiles compile for AUDIT_ARCH_AARCH64: the seen calls allowed, static-only logged, unreachable high-risk calls killed, reachable ones denied, x86_64 callers killed", () => {
  const aarch = bundled.filter((b) => b.arch === "aarch64");
  assert.ok(aarch.length >= 4);
  for (const b of aarch) {
    const text = readFileSync(resolve(PROFILES, b.file), "utf8");
    const seen = [...parseSeenEvidence(text).seen.keys()];
    assert.ok(seen.length > 60, `${b.file}: ${seen.length} seen calls`);
    for (const n of [...settingList(text, "global_syscall_allow")!]) {
      if (n === "clone3") continue; // the namespaces preset answers ENOSYS (glibc falls back to clone)
      const args = n === "socket" ? [1n, 1n, 0n] : n === "clone" ? [17n] : [0n];
      assert.equal(answer(text, "aarch64", n, args), SECCOMP_RET_ALLOW, `${b.file}: ${n}`);
    }
    for (const n of ["openat", "ppoll", "newfstatat", "pipe2", "epoll_pwait", "brk", "futex"]) assert.equal(answer(text, "aarch64", n), SECCOMP_RET_ALLOW, `${b.file}: ${n}`);
    for (const n of settingList(text, "global_syscall_log")!) assert.equal(answer(text, "aarch64", n, n === "socket" ? [1n] : [0n]), SECCOMP_RET_LOG, `${b.file}: ${n}`);
    for (const n of ["kexec_load", "finit_module", "perf_event_open"]) assert.equal(answer(text, "aarch64", n), SECCOMP_RET_KILL_PROCESS, `${b.file}: ${n}`);
    // Reachable (glibc has them): denied EPERM, as the kernel answers the server's user, not killed.
    for (const n of ["mount", "init_module", "reboot", "swapon"]) assert.equal(answer(text, "aarch64", n), SECCOMP_RET_ERRNO, `${b.file}: ${n}`);
    assert.equal(answer(text, "aarch64", "io_uring_setup"), SECCOMP_RET_ERRNO);
    // The program checks the arch: the same number from an x86_64 caller is killed.
    assert.equal(answer(text, "aarch64", "openat", [0n], AUDIT_ARCH.x86_64), SECCOMP_RET_KILL_PROCESS);
  }
});

test("compose: the profile is a draft written by policy/write.ts; it reads back to the same settings and effective table", () => {
  const base = {
    arch: "x86_64" as const,
    learned: new Map([["read", ["r1"]], ["write", ["r1"]]]),
    learnedLegend: new Map([["r1", "round 1"]]),
    floor: new Map([["brk", "malloc"]]),
    floorReasons: new Map([["malloc", "malloc and free"]]),
    kill: "@mount, @reboot",
    harden: "all, !tiocsti",
    header: ["test profile", "", "a line\nglobal_syscall_default = 'allow'"],
  };
  const an = analysis("x86_64", [finding("x86_64", "read"), finding("x86_64", "sendfile"), finding("x86_64", "mount"), finding("x86_64", "bpf")]);
  const inputs: ProfileInput[] = [
    { ...base, analysis: an, staticOnly: "log" as const },
    { ...base, analysis: an, staticOnly: "allow" as const },
    { ...base, staticOnly: "log" as const },
  ];
  for (const input of inputs) {
    const c = composeProfile(input);
    assert.equal(c.text, writePolicyText(c.draft));
    const back = assertRoundTrip(c.draft, "x86_64");
    assert.equal(back.global.defaultAction.kind, "error", "a header line stays a comment");
    assert.equal(answer(c.text, "x86_64", "sendfile"), input.analysis ? (input.staticOnly === "log" ? SECCOMP_RET_LOG : SECCOMP_RET_ALLOW) : SECCOMP_RET_ERRNO);
  }
});
