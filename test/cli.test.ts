// The pg_seccomp command as a user meets it: help on every subcommand, one clear message and a
// non-zero exit for bad input (never a stack trace), the raw program format.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { blocksTestedBy } from "./support/doc-blocks.js";
import { repoPath } from "./support/paths.js";
import { decodeProgram } from "../src/bpf/insn.js";
import { compilePolicy } from "../src/compile/compile.js";
import { loadPolicyFile } from "../src/policy/policy.js";

const BIN = repoPath("dist/src/cli/main.js");
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-cli-"));
function policy(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

test("--help works for the command and every subcommand", () => {
  const top = cli("--help");
  assert.equal(top.code, 0);
  const subs = ["show", "compile", "sim", "check", "groups", "syscalls", "bpf", "bpf disasm", "bpf asm"];
  for (const s of subs) assert.match(top.out + cli("bpf", "--help").out, new RegExp(`\\b${s.split(" ").pop()}\\b`));
  for (const s of subs) {
    const r = cli(...s.split(" "), "--help");
    assert.equal(r.code, 0, `${s} --help: ${r.err}`);
    assert.match(r.out, /Usage: pg_seccomp/, s);
  }
});

test("bad input: one message with file:line:column and a hint, exit 1, no stack trace", () => {
  const cases: Array<[string, RegExp]> = [
    [policy("unknown-syscall.conf", "global_syscall_default = error\nglobal_syscall_allow = 'read, opennat'\n"), /unknown-syscall.conf:2:31: unknown syscall "opennat"; did you mean "openat"\?/],
    [policy("overlap.conf", "global_syscall_default = error\nglobal_syscall_allow = 'read'\nglobal_syscall_error = 'read'\n"), /overlap.conf:3:25: syscall "read" is in both the allow list \(.*overlap.conf:2:25\) and the error list/],
    [policy("quote.conf", "global_syscall_default = 'error\n"), /quote.conf:1:26: unterminated quoted string/],
    [policy("action.conf", "global_syscall_default = deny\n"), /action.conf:1:26: unknown action "deny"/],
    [policy("errno.conf", "global_syscall_default = 'error:EFOO'\n"), /errno.conf:1:27: unknown errno "EFOO"/],
    [policy("setting.conf", "global_syscal_default = error\n"), /setting.conf:1:1: unknown setting "global_syscal_default"; did you mean|did you mean "global_syscall_default"/],
    [policy("loop.conf", "include 'loop.conf'\n"), /loop.conf:1:1: include loop/],
    [join(dir, "missing.conf"), /policy file ".*missing.conf" does not exist/],
  ];
  for (const [file, re] of cases) {
    const r = cli("show", file);
    assert.equal(r.code, 1, `${file}: exit ${r.code}, ${r.err}`);
    assert.match(r.err, re);
    assert.match(r.err, /^pg_seccomp: error: /);
    assert.doesNotMatch(r.err, /\n\s+at /, "no stack trace");
    assert.equal(r.out, "");
  }
});

test("a name missing on the target arch is refused for that arch only", () => {
  const p = policy("stat.conf", "global_syscall_default = error\nglobal_syscall_allow = 'stat'\n");
  assert.equal(cli("compile", p, "--arch", "x86_64").code, 0);
  const r = cli("compile", p, "--arch", "aarch64");
  assert.equal(r.code, 1);
  assert.match(r.err, /stat.conf:2:25: syscall "stat" does not exist on aarch64 \(it exists on x86_64\); use "newfstatat"/);
});

test("compile -o writes 8-byte little-endian sock_filter records; bpf disasm reads them back; asm round-trips", () => {
  const out = join(dir, "seed.bpf");
  const r = cli("compile", repoPath("examples/seed.conf"), "--arch", "x86_64", "--context", "global", "-o", out);
  assert.equal(r.code, 0, r.err);
  const raw = readFileSync(out);
  const expected = compilePolicy(loadPolicyFile(repoPath("examples/seed.conf")), "x86_64", { context: "global" });
  assert.equal(raw.length, expected.length * 8);
  assert.deepEqual(decodeProgram(raw), expected);
  assert.equal(raw.readUInt16LE(0), 0x20); // ld [arch]
  assert.equal(raw.readUInt32LE(4), 4);
  const text = cli("bpf", "disasm", out);
  assert.equal(text.code, 0);
  assert.match(text.out, /ld  \[arch\]/);
  const asmIn = join(dir, "seed.s");
  writeFileSync(asmIn, text.out);
  const again = join(dir, "again.bpf");
  assert.equal(cli("bpf", "asm", asmIn, "-o", again).code, 0);
  assert.deepEqual(readFileSync(again), raw);
});

test("sim prints the action, the policy's decision and the instruction count; --json for scripts", () => {
  const r = cli("sim", repoPath("examples/seed.conf"), "--syscall", "listen", "--context", "session", "--arch", "x86_64");
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^listen \(50\) on x86_64, context session: LOG\npolicy: session->log\nexecuted \d+ of \d+ BPF instructions\n$/);
  const j = JSON.parse(cli("sim", repoPath("examples/seed.conf"), "--syscall", "41", "--json", "--arch", "x86_64").out);
  assert.equal(j.syscall, "socket");
  assert.equal(j.action, "ALLOW");
  const bad = cli("sim", repoPath("examples/seed.conf"), "--syscall", "sokcet");
  assert.equal(bad.code, 1);
  assert.match(bad.err, /did you mean "socket"/);
});

test("groups and syscalls list their tables", () => {
  const g = cli("groups", "--arch", "x86_64");
  assert.match(g.out, /@mount\s+\|\s+\d+ \|/);
  const m = cli("groups", "@mount", "--json", "--arch", "x86_64");
  assert.ok(JSON.parse(m.out).syscalls.includes("mount"));
  assert.match(cli("groups", "@mnt").err, /unknown syscall group "@mnt".*@mount/);
  assert.match(cli("syscalls", "--arch", "aarch64").out, / openat\s+\|\s+56\n/);
});

test("the bin is executable after the build, so `npx pg_seccomp` works right after `npm ci`", () => {
  assert.ok((statSync(BIN).mode & 0o111) !== 0, "dist/src/cli/main.js must be executable");
  const r = spawnSync(BIN, ["--version"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
});

test("the CLI list of issue 18: each bad invocation is one message in PostgreSQL's client style and a non-zero exit", () => {
  const pg = "/usr/lib/postgresql/15/bin/postgres";
  const thirteen = policy("thirteen.bin", "abcdefghijklm");
  const cases: Array<[string[], number, RegExp]> = [
    [["run", "--check", "--", join(dir, "no-such-postgres"), "-D", dir], 2, /no-such-postgres: no such file/],
    [["run", "--check", "--", "/bin/true", "-D", dir], 2, /\/bin\/true is not a PostgreSQL server/],
    [["run", "--check", "--", pg, "-D", join(dir, "no-such-datadir")], 2, /the data directory .*no-such-datadir does not exist/],
    [["run", "--check", "--user", "root", "--", pg, "-D", dir], 2, /PostgreSQL refuses to run as root/],
    [["run", "--check", "--user", "nosuchuser", "--", pg, "-D", dir], 2, /there is no OS user "nosuchuser"/],
    [["bpf", "disasm", thirteen], 1, /got 13 bytes, which is not a multiple of 8/],
    [["demo", "--seconds", "abc"], 2, /--seconds: "abc" is not a number/],
    [["log", "--file", join(dir, "nonexistent")], 2, /--file .*nonexistent: no such file/],
    [["show", "--bogus"], 2, /^pg_seccomp: error: unknown option '--bogus'\npg_seccomp: hint: Try "pg_seccomp show --help" for more information\.\n$/],
    [["status", "--pid", "1"], 2, /process 1 is not a PostgreSQL postmaster/],
    [["check"], 2, /^pg_seccomp: error: missing required argument 'policy'\npg_seccomp: hint: Try "pg_seccomp check --help"/],
  ];
  for (const [args, code, re] of cases) {
    const r = cli(...args);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, re, args.join(" "));
    assert.doesNotMatch(r.err, /internal error|\n\s+at /, args.join(" "));
    assert.match(r.err, /^pg_seccomp: error: /, args.join(" "));
  }
});

test("check reads regular files only, bounded: a link to /dev/zero is refused at once", () => {
  const link = join(dir, "zero.conf");
  spawnSync("ln", ["-sf", "/dev/zero", link]);
  const t0 = Date.now();
  const r = cli("check", link);
  assert.equal(r.code, 1);
  assert.match(r.err, /is not a regular file/);
  assert.ok(Date.now() - t0 < 20_000);
});

test("check: the host's arch unless the policy says (# arch: in a file or on standard input) or --arch all; --json", () => {
  const seed = repoPath("examples/seed.conf");
  const host = cli("check", "--json", seed);
  assert.equal(host.code, 0, host.err);
  const j = JSON.parse(host.out) as { arches: string[]; archFrom: string; programs: unknown[]; entries: Array<{ filter: string; entry: string; from: string }> };
  assert.equal(j.arches.length, 1);
  assert.match(j.archFrom, /this machine's/);
  assert.ok(j.programs.length > 0);
  assert.ok(j.entries.some((e) => e.filter === "global" && /seed\.conf:\d+$/.test(e.from)));
  // seed.conf names x86_64's access: every arch, on request, fails on aarch64's names.
  const all = cli("check", "--arch", "all", seed);
  assert.equal(all.code, 1);
  assert.match(all.err, /does not exist on aarch64/);
  // The # arch: line is read from the text, also on standard input.
  const text = "# arch: aarch64\nglobal_syscall_default = 'allow'\nglobal_syscall_error = 'openat'\n";
  const stdin = spawnSync(process.execPath, [BIN, "check", "-"], { input: text, encoding: "utf8" });
  assert.equal(stdin.status, 0, stdin.stderr);
  assert.match(stdin.stdout, /<stdin>: ok for aarch64 \(its # arch: line/);
});

test("docs/policy.md's extension example, read from the Markdown: include the starter profile, global_syscall_log = '*, ptrace'; check and show --sources", () => {
  const [conf, commands] = blocksTestedBy("cli").filter((b) => b.section === "Extending a policy");
  assert.ok(conf && commands && conf.lang === "conf" && commands.lang === "sh", "docs/policy.md: the conf example and its commands, marked test=cli");
  // The one change: the include names the profile where this checkout has it, not where
  // `npm install -g` puts it (docs/deploy.md; test/package.test.ts installs the package).
  const text = conf.body.replace(/^include '[^']*\/profiles\/([^'/]+)'$/m, (_all, name: string) => `include '${repoPath(`profiles/${name}`)}'`);
  assert.notEqual(text, conf.body, "the example includes a bundled profile");
  const mine = policy(/^# \/etc\/pg_seccomp\/(\S+)$/m.exec(conf.body)?.[1] ?? "mine.conf", text);
  const [check, show] = commands.body.trim().split("\n").map((l) => l.trim().split(/\s+/));
  assert.deepEqual([check?.slice(0, 2), show?.slice(0, 2)], [["pg_seccomp", "check"], ["pg_seccomp", "show"]]);
  const run = (argv: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...argv.slice(1)], { encoding: "utf8", cwd: dirname(mine) });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const c = run(check!);
  assert.equal(c.code, 0, c.err);
  assert.match(c.out, /^ global +\| log +\| ptrace +\| .*mine\.conf:3$/m);
  const r = run(show!);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^ ptrace +\| +\d+ \| global->log +\| global +\| .*mine\.conf:3$/m);
  assert.match(r.out, /^ alarm +\| +\d+ \| global->log +\| global +\| .*postgresql-15-x86_64\.conf:\d+$/m);
});

test("show: a long conditional action goes to a footnote; the table keeps the width of its other rows", () => {
  const p = policy("cond.conf", "global_syscall_default = 'allow'\nsession_syscall_error = 'socket(arg0 == 1, arg1 == 2, arg2 == 3), socket(arg0 == 2):EPERM'\n");
  const r = cli("show", p, "--arch", "x86_64");
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^ socket +\| +41 \| \[1\] see below +\| session$/m);
  assert.match(r.out, /^\[1\] session->error:EPERM if arg0 == 2; session->error if arg0 == 1 && arg1 == 2 && arg2 == 3; else session->allow$/m);
  for (const line of r.out.split("\n").filter((l) => l.includes("|"))) assert.ok(line.length < 70, line);
});

test("log: --json is one array, --jsonl one record a line; -f prints one line per record, no header per batch", async () => {
  const rec = (pid: number) => JSON.stringify({
    time: "2026-01-02T03:04:05.678Z", pid, process: "postgres: alice db [local] COPY", context: "session", role: "alice", database: "db",
    syscall: "execve", nr: 59, args: ["0x0"], action: "terminate", errno: 13, signal: "SIGTERM",
  }) + "\n";
  const file = policy("violations.jsonl", rec(1) + rec(2));
  const arr = cli("log", "--file", file, "--json");
  assert.equal(arr.code, 0, arr.err);
  const parsed = JSON.parse(arr.out) as Array<{ pid: number; action: string }>;
  assert.deepEqual(parsed.map((e) => [e.pid, e.action]), [[1, "terminate"], [2, "terminate"]]);
  const lines = cli("log", "--file", file, "--jsonl");
  assert.deepEqual(lines.out.trim().split("\n").map((l) => (JSON.parse(l) as { pid: number }).pid), [1, 2]);
  assert.equal(cli("log", "--file", file, "--json", "-f").code, 2);
  const table = cli("log", "--file", file);
  assert.match(table.out, /^ +time +\| +pid \|/m);
  assert.match(table.out, /terminate:EACCES \(SIGTERM\)/);

  const { spawn } = await import("node:child_process");
  const { appendFileSync } = await import("node:fs");
  const follow = spawn(process.execPath, [BIN, "log", "--file", file, "-f"]);
  let out = "";
  follow.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const until = async (n: number) => {
    for (let i = 0; i < 100 && out.split("\n").filter(Boolean).length < n; i++) await new Promise((r) => setTimeout(r, 100));
  };
  await until(2);
  appendFileSync(file, rec(3));
  await until(3);
  follow.kill("SIGINT");
  await new Promise((r) => follow.on("exit", r));
  const got = out.split("\n").filter(Boolean);
  assert.equal(got.length, 3, out);
  for (const l of got) assert.match(l, /^2026-01-02 03:04:05Z pid \d session alice@db: execve terminate:EACCES \(SIGTERM\): copy|^2026-01-02 03:04:05Z pid \d session alice@db: execve terminate:EACCES \(SIGTERM\): postgres: alice db \[local\] COPY$/);
  assert.doesNotMatch(out, /\| +pid +\|/, "no table header");
});

test("--json on the commands that report: run --check --json", () => {
  const r = cli("run", "--check", "--json", "--policy", repoPath("examples/seed.conf"), "--", "/usr/lib/postgresql/15/bin/postgres", "-D", dir);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { ok: boolean; instructions: number; supervisor: boolean };
  assert.equal(j.ok, true);
  assert.ok(j.instructions > 0);
  assert.equal(cli("run", "--json", "--", "/usr/lib/postgresql/15/bin/postgres", "-D", dir).code, 2);
});
