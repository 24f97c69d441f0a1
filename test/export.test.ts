// pg_seccomp export and import. The OCI profile is checked rule by rule against the policy on
// argument values chosen to hit every boundary (with junk in the upper half of int arguments),
// then for real: a probe program and PostgreSQL 15 in containers started by runc with the
// exported profile, a probe under bubblewrap with the exported BPF, the systemd drop-in through
// systemd-analyze verify. Import reads Docker's real default profile; policy -> oci -> policy
// keeps every decision.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicyText } from "../src/policy/policy.js";
import { conditionHolds } from "../src/policy/evaluate.js";
import { sameAction, type Action } from "../src/policy/actions.js";
import type { Decision } from "../src/policy/decision.js";
import { exportDecisions } from "../src/export/common.js";
import { exportOci, jsonText, ociAction, type OciSeccomp } from "../src/export/oci.js";
import { importProfile } from "../src/export/import.js";
import { sameEffect } from "../src/export/regions.js";
import { effectiveFilterRows } from "../src/render/effective-table.js";
import { destroyCluster, query, type Cluster } from "../src/postgres/cluster.js";
import { BIN, integrationSkip, newCluster } from "./support/server.js";
import { repoPath } from "./support/paths.js";
import { errnoName } from "../src/syscalls/errno.js";

const STARTER = readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8");
const CONDITIONS = `
global_syscall_default = 'error:EPERM'
global_syscall_allow = 'read, write, exit_group, socket(arg0 == 1), socket(arg0 == 2), ioctl(arg1 < 0x5400), ioctl(arg1 >= 0x5500), kill(arg1 != 9), lseek(arg2 <= 2), fcntl(arg1 > 3, arg1 & 0xf0 == 0x10), personality(arg0:64 == 0xffffffff00000000), clone(arg0 & 0x7e020000 == 0)'
global_syscall_log = 'mmap(arg2 & 0x4 != 0)'
global_syscall_kill = 'ptrace, ioctl(arg1 == 0x5412)'
global_syscall_error = 'openat:EACCES, mkdir(arg1 & 0xc00 != 0):EROFS'
syscall_harden = 'all'
`;

// --- an OCI profile evaluated as runc + libseccomp do --------------------------------------

function ociDecide(p: OciSeccomp, name: string, args: readonly bigint[]): Action {
  const hits: Action[] = [];
  for (const s of p.syscalls) {
    if (!s.names.includes(name)) continue;
    const ok = (s.args ?? []).every((a) => {
      const v = args[a.index] ?? 0n;
      switch (a.op) {
        case "SCMP_CMP_EQ": return v === a.value;
        case "SCMP_CMP_NE": return v !== a.value;
        case "SCMP_CMP_LT": return v < a.value;
        case "SCMP_CMP_LE": return v <= a.value;
        case "SCMP_CMP_GT": return v > a.value;
        case "SCMP_CMP_GE": return v >= a.value;
        case "SCMP_CMP_MASKED_EQ": return (v & a.value) === (a.valueTwo ?? 0n);
      }
    });
    // At most one comparison per argument in a rule: runc ORs repeated ones.
    assert.equal(new Set((s.args ?? []).map((a) => a.index)).size, (s.args ?? []).length, `${name}: two comparisons of one argument in a rule`);
    if (ok) hits.push(s.action === "SCMP_ACT_ERRNO" ? { kind: "error", errno: s.errnoRet ?? 1 } : fromOci(s.action));
  }
  // Rules of one syscall never overlap with different actions: no runtime's tie-break matters.
  for (const h of hits) assert.ok(sameAction(h, hits[0]!), `${name} ${args.map((a) => a.toString(16))}: overlapping rules ${JSON.stringify(hits)}`);
  return hits[0] ?? (p.defaultAction === "SCMP_ACT_ERRNO" ? { kind: "error", errno: p.defaultErrnoRet ?? 1 } : fromOci(p.defaultAction));
}

function fromOci(a: string): Action {
  return ({ SCMP_ACT_ALLOW: { kind: "allow" }, SCMP_ACT_LOG: { kind: "log" }, SCMP_ACT_TRAP: { kind: "trap" }, SCMP_ACT_KILL_PROCESS: { kind: "kill" } } as Record<string, Action>)[a]!;
}

function decide(d: Decision, args: readonly bigint[]): Action {
  return d.kind === "leaf" ? d.action : decide(d.conds.every((c) => conditionHolds(c, args)) ? d.then : d.else, args);
}

function constants(d: Decision, out = new Set<bigint>()): Set<bigint> {
  if (d.kind === "leaf") return out;
  for (const c of d.conds) for (const v of [c.value, c.mask ?? 0n, c.value | (c.mask ?? 0n)]) for (const x of [v, v + 1n, v - 1n]) if (x >= 0n) out.add(x);
  constants(d.then, out);
  constants(d.else, out);
  return out;
}

/** Argument vectors that cross every boundary, with 0, all-ones and junk in the upper half. */
function probes(d: Decision): bigint[][] {
  const base = [...constants(d), 0n, 0xffffffffn];
  const highs = [0n, 0xffffffff00000000n, 0x100000000n, 0x8000000000000000n];
  const values = [...new Set(base.flatMap((v) => highs.map((h) => (h | (v & 0xffffffffn)) & ((1n << 64n) - 1n))).concat(base.filter((v) => v < 1n << 64n)))];
  const out: bigint[][] = [];
  for (const v of values) for (let i = 0; i < 4; i++) {
    const args = [0n, 0n, 0n, 0n, 0n, 0n];
    args[i] = v;
    out.push(args);
    const w = values[(values.indexOf(v) * 7 + i) % values.length]!;
    out.push(args.map((a, j) => (j === (i + 1) % 4 || j === (i + 2) % 4 ? w : a)));
  }
  return out;
}

for (const [label, text] of [["conditions", CONDITIONS], ["starter profile", STARTER]] as const) {
  test(`oci: every rule agrees with the policy (${label}), int arguments compared on their low half`, () => {
    const policy = parsePolicyText(text, "p.conf");
    const cd = exportDecisions(policy, { arch: "x86_64" });
    const oci = exportOci(policy, { arch: "x86_64" }).seccomp;
    let checked = 0;
    for (const [, { name, decision }] of cd.named) {
      for (const args of probes(decision)) {
        const want = decide(decision, args);
        const got = ociDecide(oci, name, args);
        assert.ok(sameAction(want, got), `${name}(${args.map((a) => "0x" + a.toString(16)).join(", ")}): policy ${JSON.stringify(want)}, oci ${JSON.stringify(got)}`);
        checked++;
      }
    }
    assert.ok(checked > 500, `only ${checked} probes`);
    assert.deepEqual(ociAction(cd.defaultDecision.action), { action: oci.defaultAction, ...(oci.defaultErrnoRet ? { errnoRet: oci.defaultErrnoRet } : {}) });
  });

  test(`round trip policy -> oci -> policy keeps every decision (${label})`, () => {
    const policy = parsePolicyText(text, "p.conf");
    const json = jsonText(exportOci(policy, { arch: "x86_64" }).seccomp);
    const back = parsePolicyText(importProfile(json, "p.json", { arch: "x86_64", caps: [], kernel: "6.1" }).text, "back.conf");
    const a = exportDecisions(policy, { arch: "x86_64" });
    const b = exportDecisions(back, { arch: "x86_64" });
    assert.ok(sameAction(a.defaultDecision.action, b.defaultDecision.action));
    for (const nr of new Set([...a.named.keys(), ...b.named.keys()])) {
      const da = a.named.get(nr)?.decision ?? a.defaultDecision;
      const db = b.named.get(nr)?.decision ?? b.defaultDecision;
      assert.ok(sameEffect(da, db), `syscall ${a.named.get(nr)?.name ?? b.named.get(nr)?.name} differs after the round trip`);
    }
    // The effective table: unconditional rows read the same (which filter decided aside).
    const rows = (p: typeof policy) => new Map(effectiveFilterRows(p, "x86_64", [{ context: "global" }]).filter((r) => !r.filter_action.includes(" if ")).map((r) => [r.syscall, r.filter_action.replace(/^[^>]*->/, "").replace(/^error$/, `error:${errnoName(p.errorErrno)}`)]));
    const ra = rows(policy);
    const rb = rows(back);
    // clone and clone3 carry run's structural rules once exported (compared exactly above).
    for (const [name, act] of ra) if (name === "clone" || name === "clone3") continue; else if (rb.has(name) || act !== rb.get("<default>")) assert.equal(rb.get(name) ?? rb.get("<default>"), act, `${name}`);
  });
}

test("oci: a SeccompProfile (k8s) is served as security-profiles-operator.x-k8s.io/v1 and reads back as YAML", () => {
  const policyPath = join(mkdtempSync(join(tmpdir(), "pg_seccomp-k8s-")), "PostgreSQL_15 main.conf");
  // A value of 2^63 or more does not fit the SeccompProfile's int64: refused, with what to do.
  writeFileSync(policyPath, CONDITIONS);
  const big = spawnSync(process.execPath, [BIN, "export", policyPath, "--format", "k8s"], { encoding: "utf8" });
  assert.equal(big.status, 2);
  assert.match(big.stderr, /personality: an argument value of 2\^63 or more .* export --format oci and install it as a Localhost profile/);
  writeFileSync(policyPath, CONDITIONS.replace(/, personality\(arg0:64 == 0xffffffff00000000\)/, ""));
  const r = spawnSync(process.execPath, [BIN, "export", policyPath, "--format", "k8s"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const py = spawnSync("python3", ["-c", "import sys, yaml, json; print(json.dumps(yaml.safe_load(sys.stdin)))"], { input: r.stdout, encoding: "utf8" });
  if (py.status !== 0) return void assert.match(r.stdout, /apiVersion: security-profiles-operator\.x-k8s\.io\/v1\n/);
  const doc = JSON.parse(py.stdout);
  assert.equal(doc.apiVersion, "security-profiles-operator.x-k8s.io/v1");
  assert.equal(doc.kind, "SeccompProfile");
  assert.equal(doc.metadata.name, "postgresql-15-main");
  const oci = JSON.parse(spawnSync(process.execPath, [BIN, "export", policyPath, "--format", "oci"], { encoding: "utf8" }).stdout);
  assert.deepEqual(doc.spec, oci);
});

// --- import ---------------------------------------------------------------------------------

const DOCKER = readFileSync(repoPath("test/fixtures/docker/default.json"), "utf8");

test("import: Docker's default profile, resolved for a stated target, with a note for each condition", () => {
  const none = importProfile(DOCKER, "default.json", { arch: "x86_64", caps: [], kernel: "6.1" });
  const p = parsePolicyText(none.text, "docker.conf");
  const cd = exportDecisions(p, { arch: "x86_64" });
  const byName = (n: string) => [...cd.named.values()].find((v) => v.name === n)?.decision ?? cd.defaultDecision;
  assert.deepEqual(decide(byName("read"), [0n, 0n, 0n, 0n, 0n, 0n]), { kind: "allow" });
  assert.deepEqual(decide(byName("mount"), [0n, 0n, 0n, 0n, 0n, 0n]), { kind: "error", errno: 1 });
  // clone without CAP_SYS_ADMIN: allowed without namespace flags, EPERM with CLONE_NEWUSER.
  assert.deepEqual(decide(byName("clone"), [0x11n, 0n, 0n, 0n, 0n, 0n]), { kind: "allow" });
  assert.deepEqual(decide(byName("clone"), [0x10000000n, 0n, 0n, 0n, 0n, 0n]), { kind: "error", errno: 1 });
  assert.deepEqual(decide(byName("clone3"), [0n, 0n, 0n, 0n, 0n, 0n]), { kind: "error", errno: 38 });
  assert.deepEqual(decide(byName("personality"), [0xffffffffn, 0n, 0n, 0n, 0n, 0n]), { kind: "allow" });
  assert.deepEqual(decide(byName("personality"), [0x0400000n, 0n, 0n, 0n, 0n, 0n]), { kind: "error", errno: 1 });
  assert.ok(none.notes.some((n) => /\(bpf, clone, clone3, \.\.\.\): skipped: includes\.caps CAP_SYS_ADMIN: not all given/.test(n)), none.notes.join("\n"));
  assert.ok(none.notes.some((n) => /includes\.minKernel 4\.8: kernel 6\.1 is that new/.test(n)));
  assert.ok(none.notes.some((n) => /includes\.arches arm arm64: not x86_64/.test(n)));
  assert.ok(none.stats.skippedNames > 10);
  // With CAP_SYS_ADMIN and an old kernel, the other branches.
  const admin = importProfile(DOCKER, "default.json", { arch: "x86_64", caps: ["CAP_SYS_ADMIN"], kernel: "4.4" });
  const pa = exportDecisions(parsePolicyText(admin.text, "a.conf"), { arch: "x86_64" });
  const aName = (n: string) => [...pa.named.values()].find((v) => v.name === n)?.decision ?? pa.defaultDecision;
  assert.deepEqual(decide(aName("mount"), [0n, 0n, 0n, 0n, 0n, 0n]), { kind: "allow" });
  assert.deepEqual(decide(aName("ptrace"), [0n, 0n, 0n, 0n, 0n, 0n]), { kind: "error", errno: 1 });
  assert.ok(admin.notes.some((n) => /minKernel 4\.8: kernel 4\.4 is not that new/.test(n)));
  // aarch64: arch_prctl is x86's; the arm64 block is included.
  const arm = importProfile(DOCKER, "default.json", { arch: "aarch64", caps: [], kernel: "6.1" });
  assert.ok(arm.notes.some((n) => /includes\.arches arm arm64: aarch64/.test(n)));
});

test("import: rules with no equivalent are named, and bad profiles get a JSON path and a hint", () => {
  const r = importProfile(JSON.stringify({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [
    { names: ["mkdir"], action: "SCMP_ACT_NOTIFY" },
    { names: ["socket"], action: "SCMP_ACT_ERRNO", errnoRet: 97, args: [{ index: 0, value: 17, op: "SCMP_CMP_EQ" }, { index: 0, value: 10, op: "SCMP_CMP_EQ" }] },
    { names: ["ptrace"], action: "SCMP_ACT_KILL" },
  ] }), "x.json", { arch: "x86_64", caps: [], kernel: "6.1" });
  assert.ok(r.warnings.some((w) => /syscalls\[0\] \(mkdir\): SCMP_ACT_NOTIFY .* imported as error:EPERM/.test(w)), r.warnings.join("\n"));
  assert.ok(r.warnings.some((w) => /syscalls\[1\] \(socket\): 2 comparisons of argument 0/.test(w)));
  assert.ok(r.warnings.some((w) => /SCMP_ACT_KILL kills one thread; imported as kill/.test(w)));
  assert.match(r.text, /global_syscall_error = 'mkdir, socket\(arg0:64 == 0x11\):EAFNOSUPPORT, socket\(arg0:64 == 0xa\):EAFNOSUPPORT'/);

  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-import-"));
  const bad = join(dir, "bad.json");
  writeFileSync(bad, JSON.stringify({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW" }, { names: ["socket"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 1, op: "SCMP_CMP_EQUAL" }] }] }));
  const e = spawnSync(process.execPath, [BIN, "import", bad], { encoding: "utf8" });
  assert.equal(e.status, 2);
  assert.match(e.stderr, /bad\.json: syscalls\[1\]\.args\[0\]\.op: unknown operator "SCMP_CMP_EQUAL"\npg_seccomp: hint: use one of SCMP_CMP_NE/);
  writeFileSync(bad, '{\n "defaultAction": "SCMP_ACT_ERRNO",\n "syscalls": [ }\n');
  const j = spawnSync(process.execPath, [BIN, "import", bad], { encoding: "utf8" });
  assert.equal(j.status, 2);
  assert.match(j.stderr, /bad\.json( \(line \d+\))?: not valid JSON: [^]*\npg_seccomp: hint: give a seccomp profile/);
  assert.doesNotMatch(j.stderr + e.stderr, /    at /);
  rmSync(dir, { recursive: true, force: true });
});

test("export and import have --help, and export --json reports what it wrote", () => {
  for (const cmd of ["export", "import"]) {
    const r = spawnSync(process.execPath, [BIN, cmd, "--help"], { encoding: "utf8" });
    assert.equal(r.status, 0);
    assert.match(r.stdout, new RegExp(`Usage: pg_seccomp ${cmd}`));
  }
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-json-"));
  const r = spawnSync(process.execPath, [BIN, "export", repoPath("profiles/postgresql-15-x86_64.conf"), "--format", "oci", "--arch", "x86_64", "-o", join(dir, "p.json"), "--json"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  assert.equal(rep.defaultAction, "SCMP_ACT_ERRNO");
  assert.equal(JSON.parse(readFileSync(join(dir, "p.json"), "utf8")).syscalls.length, rep.rules);
  rmSync(dir, { recursive: true, force: true });
});

// --- systemd --------------------------------------------------------------------------------

function dropInDirectives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = "";
  for (const line of text.split("\n")) {
    if (/^\s*(#|;|$)/.test(line)) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) { section = s[1]!; continue; }
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    assert.ok(m && section === "Service", `not a [Service] directive: ${line}`);
    out.set(m![1]!, [...(out.get(m![1]!) ?? []), m![2]!]);
  }
  return out;
}

test("systemd: the starter profile is refused until weaker rules are accepted, then parses back and verifies", () => {
  const refused = spawnSync(process.execPath, [BIN, "export", repoPath("profiles/postgresql-15-x86_64.conf"), "--format", "systemd", "--arch", "x86_64"], { encoding: "utf8" });
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /systemd cannot express \d+ rules of this policy as strictly:\n  .*kexec_load: kill becomes error:EPERM/s);
  assert.match(refused.stderr, /hint: .*--accept-weaker/);
  const r = spawnSync(process.execPath, [BIN, "export", repoPath("profiles/postgresql-15-x86_64.conf"), "--format", "systemd", "--arch", "x86_64", "--accept-weaker"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const d = dropInDirectives(r.stdout);
  const allowed = new Set(d.get("SystemCallFilter")![0]!.split(" "));
  for (const n of ["read", "openat", "clone", "socket", "execve"]) assert.ok(allowed.has(n), n);
  for (const n of ["ptrace", "mount", "bpf"]) assert.ok(!allowed.has(n), n);
  assert.deepEqual(d.get("SystemCallErrorNumber"), ["EPERM"]);
  assert.deepEqual(d.get("SystemCallArchitectures"), ["native"]);
  assert.deepEqual(d.get("NoNewPrivileges"), ["yes"]);
  assert.deepEqual(d.get("RestrictNamespaces"), ["yes"]);
  assert.deepEqual(d.get("LockPersonality"), ["yes"]);
  assert.match(r.stdout, /# Exported LESS strictly than the policy \(accepted with --accept-weaker\):\n#  - [^]*kexec_load: kill becomes error:EPERM/);
  assert.match(r.stdout, /#  - no violation log/);

  // A default-allow policy: a deny list with per-call errnos, conditions dropped to the stricter answer.
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-systemd-"));
  const pol = join(dir, "deny.conf");
  writeFileSync(pol, "global_syscall_default = 'allow'\nglobal_syscall_error = 'mkdir:EPERM, socket(arg0 == 17):EAFNOSUPPORT'\nglobal_syscall_kill = 'ptrace'\nglobal_syscall_log = 'unshare'\n");
  const deny = spawnSync(process.execPath, [BIN, "export", pol, "--format", "systemd", "-o", join(dir, "x.service.d", "pg_seccomp.conf")], { encoding: "utf8" });
  assert.equal(deny.status, 2, "no directory yet: the error is a clear one");
  mkdirSync(join(dir, "x.service.d"));
  const ok = spawnSync(process.execPath, [BIN, "export", pol, "--format", "systemd", "-o", join(dir, "x.service.d", "pg_seccomp.conf")], { encoding: "utf8" });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stderr, /argument conditions dropped .*socket -> error:EAFNOSUPPORT/);
  const dd = dropInDirectives(readFileSync(join(dir, "x.service.d", "pg_seccomp.conf"), "utf8"));
  assert.deepEqual(dd.get("SystemCallFilter"), ["~mkdir:EPERM ptrace:kill socket:EAFNOSUPPORT"]);
  assert.deepEqual(dd.get("SystemCallLog"), ["unshare"]);
  // systemd itself reads it, when systemd-analyze is here (Debian's systemd package).
  if (spawnSync("systemd-analyze", ["--version"]).status === 0) {
    writeFileSync(join(dir, "x.service"), "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n");
    for (const dropIn of [readFileSync(join(dir, "x.service.d", "pg_seccomp.conf"), "utf8"), r.stdout]) {
      writeFileSync(join(dir, "x.service.d", "pg_seccomp.conf"), dropIn);
      const v = spawnSync("systemd-analyze", ["verify", join(dir, "x.service")], { encoding: "utf8", env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` } });
      assert.doesNotMatch(v.stderr, /pg_seccomp\.conf:\d+:/, v.stderr);
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

// --- for real: runc, PostgreSQL in runc, bubblewrap -----------------------------------------

const root = process.getuid?.() === 0;
const runc = spawnSync("runc", ["--version"]).status === 0;
const bwrap = spawnSync("bwrap", ["--version"]).status === 0;
const gcc = spawnSync("gcc", ["--version"]).status === 0;
const runcSkip = !root ? "needs root to start containers with runc" : !runc ? "needs runc (apt-get install runc)" : !gcc ? "needs gcc for the probe" : false;
let work: string;
let probe: string;

const PROBE_C = `
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
/* Each argument names a call; prints "call ok" or "call ERRNO". socket:D passes D raw (upper half too). */
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *w = argv[i];
    long r;
    if (!strcmp(w, "mkdir")) { r = mkdir("/tmp/probe-dir", 0700); if (r == 0) rmdir("/tmp/probe-dir"); }
    else if (!strcmp(w, "getpid")) r = getpid() > 0 ? 0 : -1;
    else if (!strncmp(w, "socket:", 7)) { r = syscall(SYS_socket, strtoul(w + 7, 0, 0), 1 /* SOCK_STREAM */, 0); if (r >= 0) { close(r); r = 0; } }
    else { fprintf(stderr, "unknown call %s\\n", w); return 2; }
    printf("%s %s\\n", w, r < 0 ? strerrorname_np(errno) : "ok");
  }
  return 0;
}
`;

before(() => {
  if (!root || !gcc) return;
  work = mkdtempSync(join(tmpdir(), "pg_seccomp-export-"));
  chmodSync(work, 0o755);
  writeFileSync(join(work, "probe.c"), PROBE_C);
  probe = join(work, "probe");
  const r = spawnSync("gcc", ["-O1", "-Wall", "-o", probe, join(work, "probe.c")], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
});
after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

let bundles = 0;
/** An OCI bundle whose root is the host's /usr, /lib, /lib64, /bin, /etc, read-only. */
function bundle(seccomp: unknown, args: string[], opts: { user?: { uid: number; gid: number }; binds?: string[] } = {}): { dir: string; id: string } {
  const id = `pg-seccomp-export-${process.pid}-${++bundles}`;
  const dir = join(work, id);
  mkdirSync(join(dir, "rootfs"), { recursive: true });
  for (const d of ["usr", "lib", "lib64", "bin", "etc", "proc", "dev", "sys", "tmp", "probe"]) mkdirSync(join(dir, "rootfs", d), { recursive: true });
  const r = spawnSync("runc", ["spec", "--bundle", dir], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  config.process.terminal = false;
  config.process.args = args;
  if (opts.user) config.process.user = { uid: opts.user.uid, gid: opts.user.gid };
  const bind = (src: string, dst: string, rw = false) => config.mounts.push({ destination: dst, type: "bind", source: src, options: ["rbind", rw ? "rw" : "ro"] });
  for (const d of ["/usr", "/lib", "/lib64", "/bin", "/etc"]) bind(d, d);
  config.mounts.push({ destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] });
  bind(work, "/probe");
  for (const b of opts.binds ?? []) bind(b, b, true);
  config.linux.seccomp = seccomp;
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, (_k, v) => (typeof v === "bigint" ? Number(v) : v)));
  return { dir, id };
}

function exportedOci(policyText: string): unknown {
  const pol = join(work, `p${++bundles}.conf`);
  writeFileSync(pol, policyText);
  const r = spawnSync(process.execPath, [BIN, "export", pol, "--format", "oci", "-o", `${pol}.json`], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(readFileSync(`${pol}.json`, "utf8"));
}

function probeResults(stdout: string): Record<string, string> {
  return Object.fromEntries(stdout.trim().split("\n").map((l) => l.split(" ") as [string, string]));
}

const MKDIR_POLICY = "global_syscall_default = 'allow'\nglobal_syscall_error = 'mkdir:EPERM, socket(arg0 == 17):EAFNOSUPPORT'\n";
const CALLS = ["mkdir", "getpid", "socket:1", "socket:17", "socket:0x100000011", "socket:0xffffffff00000011", "socket:0x100000001"];

test("runc: a probe in a container with the exported OCI profile: mkdir EPERM, AF_PACKET refused whatever the upper half, the rest works", { skip: runcSkip }, () => {
  // Control: the same container without a profile, so the checks below cannot pass vacuously.
  const controlB = bundle(undefined, ["/probe/probe", ...CALLS]);
  const control = spawnSync("runc", ["run", "--bundle", controlB.dir, controlB.id], { encoding: "utf8", timeout: 60_000 });
  assert.equal(control.status, 0, control.stderr);
  const c = probeResults(control.stdout);
  assert.equal(c["mkdir"], "ok");
  assert.notEqual(c["socket:17"], "EAFNOSUPPORT");

  const b = bundle(exportedOci(MKDIR_POLICY), ["/probe/probe", ...CALLS]);
  const r = spawnSync("runc", ["run", "--bundle", b.dir, b.id], { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(probeResults(r.stdout), {
    mkdir: "EPERM",
    getpid: "ok",
    "socket:1": "ok",
    "socket:17": "EAFNOSUPPORT",
    // The kernel reads the family as an int: junk in the upper half must not get AF_PACKET through.
    "socket:0x100000011": "EAFNOSUPPORT",
    "socket:0xffffffff00000011": "EAFNOSUPPORT",
    "socket:0x100000001": "ok",
  });
});

test("runc: PostgreSQL 15 in a container under the exported starter profile answers select 1", { skip: runcSkip || integrationSkip() }, async () => {
  const cluster: Cluster = await newCluster();
  const seccomp = exportedOci(STARTER);
  const b = bundle(seccomp, [join(cluster.binDir, "postgres"), "-D", cluster.dataDir], { user: { uid: cluster.user.uid, gid: cluster.user.gid }, binds: [cluster.root] });
  const logPath = join(work, `${b.id}.log`);
  const log = openSync(logPath, "w");
  const proc = spawn("runc", ["run", "--bundle", b.dir, b.id], { stdio: ["ignore", log, log] });
  closeSync(log);
  const exited = new Promise<number | null>((res) => proc.on("exit", (code) => res(code)));
  try {
    let answer = "";
    for (let i = 0; i < 120 && !answer; i++) {
      await new Promise((res) => setTimeout(res, 250));
      try {
        answer = query(cluster, "select 1");
      } catch {
        /* not up yet */
      }
    }
    assert.equal(answer, "1", readFileSync(logPath, "utf8"));
    // The server runs under the profile: its status shows a filter, and a denied call is denied.
    const state = spawnSync("runc", ["state", b.id], { encoding: "utf8" });
    const pid = JSON.parse(state.stdout).pid as number;
    assert.match(readFileSync(`/proc/${pid}/status`, "utf8"), /Seccomp:\s+2/);
    assert.match(query(cluster, "select count(*) from pg_stat_activity"), /^\d+$/);
  } finally {
    spawnSync("runc", ["kill", b.id, "SIGINT"]);
    const t = setTimeout(() => spawnSync("runc", ["kill", b.id, "SIGKILL"]), 30_000);
    await exited;
    clearTimeout(t);
    spawnSync("runc", ["delete", "--force", b.id]);
    destroyCluster(cluster);
  }
});

test("bwrap --seccomp: a probe under the exported raw BPF program", { skip: !root || !gcc ? "needs root and gcc" : !bwrap ? "needs bubblewrap (apt-get install bubblewrap)" : false }, () => {
  const pol = join(work, "bwrap.conf");
  writeFileSync(pol, MKDIR_POLICY);
  const out = join(work, "bwrap.bpf");
  const r = spawnSync(process.execPath, [BIN, "export", pol, "--format", "bpf", "-o", out], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const run = (withFilter: boolean) => {
    const fd = openSync(out, "r");
    try {
      const args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--ro-bind", work, work, ...(withFilter ? ["--seccomp", "3"] : []), probe, ...CALLS];
      const p = spawnSync("bwrap", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe", fd], timeout: 30_000 });
      assert.equal(p.status, 0, p.stderr);
      return probeResults(p.stdout);
    } finally {
      closeSync(fd);
    }
  };
  assert.equal(run(false)["mkdir"], "ok");
  const got = run(true);
  assert.equal(got["mkdir"], "EPERM");
  assert.equal(got["getpid"], "ok");
  assert.equal(got["socket:0x100000011"], "EAFNOSUPPORT");
  assert.equal(got["socket:1"], "ok");
});

test("contrib/kubernetes/seccompprofile-postgresql-15.yaml is what docs/deploy.md's command writes today", () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-contrib-"));
  const out = join(dir, "sp.yaml");
  const r = spawnSync(process.execPath, [BIN, "export", "profiles/postgresql-15-x86_64.conf", "--format", "k8s", "--arch", "x86_64", "--name", "postgresql-15", "-o", out], { encoding: "utf8", cwd: repoPath(".") });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(out, "utf8"), readFileSync(repoPath("contrib/kubernetes/seccompprofile-postgresql-15.yaml"), "utf8"), "regenerate it with the command in docs/deploy.md");
  rmSync(dir, { recursive: true, force: true });
});
