// The hardening presets (syscall_harden) in the real kernel: a small C probe
// (test/fixtures/harden-probe.c) installs a compiled program in itself and tries what the presets
// are about (namespaces through unshare, clone and clone3; glibc's fork, pthread_create and
// posix_spawn; socket families; personality; set-id modes; TIOCSTI). Then a real server under
// the starter profile: a backend's program cannot get into a new user namespace, and the server
// keeps serving. Every check has a control run without the preset, so none can pass vacuously.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicyText } from "../src/policy/policy.js";
import { compilePolicy } from "../src/compile/compile.js";
import { encodeProgram } from "../src/bpf/insn.js";
import { hostKernelArch } from "../src/kernel/index.js";
import { destroyCluster, psql, query, type Cluster } from "../src/postgres/cluster.js";
import { BIN, integrationSkip, newCluster, startReady, stop, writePolicy, logFile } from "./support/server.js";
import { repoPath } from "./support/paths.js";

const gcc = spawnSync("gcc", ["--version"]).status === 0;
const skip = integrationSkip() || (gcc ? false : "needs gcc to build the probe");
const arch = skip ? "x86_64" : hostKernelArch().name;
const starterSkip = skip || (arch !== "x86_64" ? "the starter profile is x86_64's" : false);

const STARTER = readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8");
let dir: string;
let probe: string;

before(() => {
  if (skip) return;
  // Readable and executable by the server's user: the real-server test runs it as a COPY program.
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-harden-"));
  chmodSync(dir, 0o755);
  probe = join(dir, "harden-probe");
  const r = spawnSync("gcc", ["-O1", "-Wall", "-pthread", "-o", probe, repoPath("test/fixtures/harden-probe.c")], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs the probe under `policyText` compiled for this machine ("" = no filter); name -> "ok" | errno name. */
function probeUnder(policyText: string): Map<string, string> {
  let filterArg = "-";
  if (policyText !== "") {
    const prog = compilePolicy(parsePolicyText(policyText, "probe.conf"), hostKernelArch().name, { context: "global" });
    filterArg = join(dir, `filter-${Math.random().toString(36).slice(2)}.bpf`);
    writeFileSync(filterArg, encodeProgram(prog));
  }
  const r = spawnSync(probe, [filterArg], { encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, `probe failed (${r.status} ${r.signal}): ${r.stderr}`);
  return new Map(r.stdout.trim().split("\n").map((l) => l.split(" ") as [string, string]));
}

function expectAll(got: Map<string, string>, want: Record<string, string>, label: string): void {
  const diff = Object.entries(want).filter(([k, v]) => got.get(k) !== v).map(([k, v]) => `${k}: want ${v}, got ${got.get(k)}`);
  assert.deepEqual(diff, [], `${label}:\n${diff.join("\n")}`);
}

const PRESET_DENIALS = {
  unshare_newuser: "EPERM", unshare_newnet: "EPERM", clone_newuser: "EPERM", clone_newuser_newnet: "EPERM", clone_parent: "EPERM",
  clone3: "ENOSYS", socket_netlink_netfilter: "EPROTONOSUPPORT", socket_packet: "EAFNOSUPPORT", personality_bsd: "EPERM",
  personality_norandom: "EPERM", chmod_setuid: "EPERM", fchmod_setgid: "EPERM", open_create_setuid: "EPERM", ioctl_tiocsti: "EPERM",
};
const STILL_WORKS = {
  clone_plain: "ok", fork: "ok", pthread_create: "ok", posix_spawn: "ok", socket_unix: "ok", socket_inet: "ok", socket_inet6: "ok",
  socket_netlink_route: "ok", getifaddrs: "ok", open_create: "ok", chmod_plain: "ok", ioctl_tcgets: "ENOTTY",
};

test("control: without a filter, root's probe does every one of the things the presets deny", { skip }, () => {
  expectAll(
    probeUnder(""),
    {
      ...STILL_WORKS, unshare_newuser: "ok", unshare_newnet: "ok", clone_newuser: "ok", clone_newuser_newnet: "ok", clone_parent: "ok", clone3: "ok",
      socket_netlink_netfilter: "ok", socket_packet: "ok", personality_bsd: "ok", personality_norandom: "ok", chmod_setuid: "ok",
      fchmod_setgid: "ok", open_create_setuid: "ok", ioctl_tiocsti: "ENOTTY",
    },
    "no filter",
  );
});

test("every preset over an allow-everything policy: the denials, and glibc's fork, threads and posix_spawn still work", { skip }, () => {
  const got = probeUnder("global_syscall_default = 'allow'\nsyscall_harden = 'all'\n");
  expectAll(got, { ...PRESET_DENIALS, ...STILL_WORKS, personality_query: "ok" }, "allow + all presets");
  // Leaving one preset out gives its calls back, and only those.
  const noAf = probeUnder("global_syscall_default = 'allow'\nsyscall_harden = 'all, !address_families'\n");
  expectAll(noAf, { ...PRESET_DENIALS, ...STILL_WORKS, socket_packet: "ok", socket_netlink_netfilter: "ok" }, "all but address_families");
});

test("glibc 2.36 tries clone3 first and falls back to clone only on ENOSYS (why the preset answers ENOSYS)", { skip }, () => {
  const eperm = probeUnder("global_syscall_default = 'allow'\nglobal_syscall_error = 'clone3:EPERM'\n");
  expectAll(eperm, { clone3: "EPERM", pthread_create: "EPERM", posix_spawn: "EPERM", fork: "ok" }, "clone3 EPERM");
  const enosys = probeUnder("global_syscall_default = 'allow'\nglobal_syscall_error = 'clone3:ENOSYS'\n");
  expectAll(enosys, { clone3: "ENOSYS", pthread_create: "ok", posix_spawn: "ok", fork: "ok" }, "clone3 ENOSYS");
});

test("the starter profile, compiled: namespaces, families, set-id modes and TIOCSTI denied; what PostgreSQL uses works", { skip: starterSkip }, () => {
  // personality is not in the starter's allow list at all: its default (EPERM) answers the query too.
  expectAll(probeUnder(STARTER), { ...PRESET_DENIALS, ...STILL_WORKS, personality_query: "EPERM" }, "starter profile");
  // Control: the same profile without its presets lets clone make a user namespace (the review's attack).
  const without = probeUnder(STARTER + "\nsyscall_harden = ''\n");
  expectAll(without, { clone_newuser: "ok", clone_newuser_newnet: "ok", clone3: "ok", socket_packet: "ok", chmod_setuid: "ok", ioctl_tiocsti: "ENOTTY" }, "starter without presets");
});

test("pg_seccomp check: one warning line per risk, exit 0; --strict exits 1; the starter profile keeps only fileless_exec", () => {
  const tmp = mkdtempSync(join(tmpdir(), "pg_seccomp-check-"));
  try {
    const file = join(tmp, "p.conf");
    writeFileSync(file, "global_syscall_default = 'error'\nglobal_syscall_allow = 'clone, clone3, read, io_uring_setup'\n");
    const check = (...args: string[]) => spawnSync(process.execPath, [BIN, "check", ...args], { encoding: "utf8" });
    const r = check(file);
    assert.equal(r.status, 0, r.stderr);
    const warnings = r.stderr.split("\n").filter((l) => l.startsWith("pg_seccomp: warning: "));
    assert.deepEqual(warnings.map((l) => l.split(":")[2]!.trim()), ["namespaces", "io_uring"]);
    assert.match(warnings[0]!, /clone with CLONE_NEWUSER, clone3 \(its flags cannot be checked\) allowed in every context(?: on \S+)? \(.*p\.conf:2\).*add syscall_harden = 'namespaces'/);
    assert.match(r.stdout, /p\.conf: ok (?:for \S+ \([^)]*; )?(?:\()?1 file, 2 warnings\)/);
    assert.equal(check("--strict", file).status, 1);
    writeFileSync(file, "global_syscall_default = 'error'\nglobal_syscall_allow = 'clone, clone3, read'\nsyscall_harden = 'all'\n");
    const clean = check("--strict", file);
    assert.equal(clean.status, 0, clean.stderr);
    assert.doesNotMatch(clean.stderr, /warning/);
    const starter = check("--arch", "x86_64", repoPath("profiles/postgresql-15-x86_64.conf"));
    assert.equal(starter.status, 0, starter.stderr);
    assert.deepEqual(starter.stderr.match(/warning: (\w+)/g), ["warning: fileless_exec"]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

let cluster: Cluster | undefined;
after(() => {
  if (cluster) destroyCluster(cluster);
});

test("a real server under the starter profile: a COPY program cannot get into a user namespace, and the server keeps serving", { skip: starterSkip, timeout: 180_000 }, async () => {
  cluster = await newCluster();
  // unshare allowed by the lists, so that only the preset stands between a backend and a namespace.
  const allow = /global_syscall_allow = '([^']*)'/.exec(STARTER)![1]!;
  const withUnshare = STARTER.replace(`global_syscall_allow = '${allow}'`, `global_syscall_allow = 'unshare, setns, ${allow}'`);
  const unshareCmd = "copy (select 1) to program 'cat >/dev/null; unshare -Ur true'";
  const cloneCmd = `copy (select 1) to program 'cat >/dev/null; ${probe} - clone-newuser'`;

  // Control: the same profile without presets lets both through (as the review found).
  const control = await startReady(cluster, ["--policy", writePolicy(withUnshare + "\nsyscall_harden = ''\n", "harden-off.conf")]);
  try {
    for (const cmd of [unshareCmd, cloneCmd]) {
      const r = psql(cluster, cmd);
      assert.ok(r.ok, `without presets, ${cmd} works: ${r.stderr}`);
    }
  } finally {
    await stop(control);
  }

  const log = logFile("harden.jsonl");
  const s = await startReady(cluster, ["--policy", writePolicy(withUnshare, "harden-on.conf"), "--log", log]);
  try {
    const u = psql(cluster, unshareCmd);
    assert.equal(u.ok, false, "unshare -Ur must fail");
    assert.match(u.stderr, /program "cat >\/dev\/null; unshare -Ur true" failed.*\n?.*exit code 1/);
    const c = psql(cluster, cloneCmd);
    assert.equal(c.ok, false, "clone(CLONE_NEWUSER) must fail");
    assert.match(c.stderr, /exit code 1\b/, "the probe exits with EPERM (1)");
    assert.equal(query(cluster, "select 40 + 2"), "42");
    // A program that needs nothing the presets deny still runs (threads and spawns go clone3 -> clone).
    const ok = psql(cluster, "copy (select 1) to program 'cat >/dev/null'");
    assert.ok(ok.ok, ok.stderr);
  } finally {
    const r = await stop(s);
    assert.equal(r.signal, null, s.stderr());
  }
  assert.doesNotMatch(s.stderr(), /terminated by signal|Bad system call/);
  // The attempts are in the violation log; glibc's clone3 (answered ENOSYS in the kernel) is not.
  const entries = existsSync(log) ? readFileSync(log, "utf8") : "";
  assert.match(entries, /"syscall":"unshare".*"action":"error"/);
  assert.match(entries, /"syscall":"clone".*"action":"error"/);
  assert.doesNotMatch(entries, /"syscall":"clone3"/);
});
