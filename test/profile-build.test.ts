// The commands docs/profiles.md gives for regenerating the bundled profiles without a server run
// (`build.js --learned-from`) and for their sizes table (`sizes.js`), run as a user would: the
// result must be the bundled file, and the table the one the docs print. Debian's 15 only on
// x86_64 (its analysis is cached per file after the first run).
//
// CI runs on new machines: apt brings another point release, glibc update or kernel build. What
// the builder records of the machine (the build date, the server and glibc versions, the kernel
// string) is never compared; what static analysis of the machine's binaries adds (the logged
// list, the static evidence) is compared only when the binaries are the ones the bundled profile
// was built from. The allow list (seen ∪ floor) depends on no machine and is always compared.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoPath } from "./support/paths.js";

const script = (name: string) => repoPath(`dist/scripts/profile/${name}.js`);

/** The "server version; libc version" a profile's header says it was built from. */
const builtFrom = (text: string) => /^# Built by \S+(?: --tracer strace)? on \d{4}-\d\d-\d\d: (.*)\.$/m.exec(text)?.[1];

/** The profile text less what it records of the machine that built it: dates, versions, kernel. */
const machineNeutral = (text: string) =>
  text
    .replace(/^(# Built by \S+(?: --tracer strace)? on )\d{4}-\d\d-\d\d: .*$/m, "$1DATE: SERVER; LIBC.")
    .replace(/^# Kernel \S+\.$/m, "# Kernel KERNEL.")
    .replace(/\b\d{4}-\d{2}-\d{2}\b/g, "YYYY-MM-DD");

/** The settings of a profile (name -> value), comments left out. */
const settings = (text: string) => new Map(text.split("\n").filter((l) => /^[a-z_.]+ = /.test(l)).map((l) => [l.slice(0, l.indexOf(" = ")), l.slice(l.indexOf(" = ") + 3)] as const));

/** The seen and floor evidence of each allowed call, without what static analysis says of it. */
const allowedEvidence = (text: string) => text.split("\n").filter((l) => /^# {3}[a-z0-9_]+: (seen|floor) /.test(l)).map((l) => l.replace(/; static .*$/, ""));

/** This machine's "server version; libc version", as build.ts writes them. */
const machineInputs = (postgres: string) => {
  const version = spawnSync(postgres, ["--version"], { encoding: "utf8" }).stdout.trim();
  const libc = spawnSync("ldd", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0]?.trim();
  return `${version}; ${libc}`;
};
const skip = existsSync("/usr/lib/postgresql/15/bin/postgres") ? false : "needs Debian's PostgreSQL 15";

test("machineNeutral hides what a profile records of the machine, and nothing else", () => {
  const a = "# Built by scripts/profile/build.ts on 2026-11-28: postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1); ldd (Debian GLIBC 2.36-9+deb12u14) 2.36.\n# Kernel 6.18.44-fc-v669.\nglobal_syscall_allow = 'read'\n";
  const b = a.replace(/15\.18/g, "15.20").replace("deb12u14", "deb12u15").replace("fc-v669", "fc-v1272").replace("2026-11-28", "2027-01-02");
  assert.equal(machineNeutral(a), machineNeutral(b));
  assert.equal(builtFrom(a), "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1); ldd (Debian GLIBC 2.36-9+deb12u14) 2.36");
  assert.notEqual(machineNeutral(a), machineNeutral(a.replace("'read'", "'read, write'")), "a setting is never hidden");
});

test("build.js --major 15 --learned-from, in place as docs/profiles.md runs it, writes the bundled profile again", { skip, timeout: 300_000 }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-build-"));
  try {
    // Rebuilt in place (as docs/profiles.md does it), on a copy: --learned-from the file it writes.
    const out = join(dir, "postgresql-15-x86_64.conf");
    copyFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), out);
    const r = spawnSync(process.execPath, [script("build"), "--major", "15", "--learned-from", out, "--out", out], { cwd: repoPath("."), encoding: "utf8", timeout: 280_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr + r.stdout, /wrote .*postgresql-15-x86_64\.conf: 161 allowed \(86 seen, 75 floor only\), \d+ static only \(log\)/);
    const rebuilt = readFileSync(out, "utf8");
    const bundled = readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8");
    const hint = "regenerate the bundled profiles (docs/profiles.md) after changing the builder";
    assert.equal(settings(rebuilt).get("global_syscall_allow"), settings(bundled).get("global_syscall_allow"), hint);
    assert.deepEqual(allowedEvidence(rebuilt), allowedEvidence(bundled), hint);
    assert.ok(allowedEvidence(bundled).length > 100, "the bundled profile's evidence lines were found");
    const inputs = machineInputs("/usr/lib/postgresql/15/bin/postgres");
    if (builtFrom(bundled) === inputs) {
      assert.equal(machineNeutral(rebuilt), machineNeutral(bundled), hint);
    } else {
      // Another point release or glibc: its static analysis may differ; the rest still must not.
      t.diagnostic(`static part not compared: this machine has ${inputs}, the bundled profile was built from ${builtFrom(bundled)}`);
      const rest = (m: Map<string, string>) => [...m].filter(([k]) => k !== "global_syscall_log" && k !== "global_syscall_allow" && k !== "global_syscall_error");
      assert.deepEqual(rest(settings(rebuilt)), rest(settings(bundled)), hint);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sizes.js prints the table docs/profiles.md shows", () => {
  const r = spawnSync(process.execPath, [script("sizes")], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const docs = readFileSync(repoPath("docs/profiles.md"), "utf8");
  const row = (l: string) => l.split("|").slice(1, -1).map((c) => c.trim());
  const docRows = new Map(docs.split("\n").filter((l) => /^\| postgresql-\d+-(x86_64|aarch64)(-io_uring)?\.conf \|/.test(l)).map((l) => [row(l)[0]!, row(l)]));
  const printed = r.stdout.split("\n").filter((l) => /^\| postgresql-/.test(l)).map(row);
  assert.ok(printed.length >= 9, r.stdout);
  for (const p of printed) assert.deepEqual(docRows.get(p[0]!), p, `docs/profiles.md's row for ${p[0]} (node dist/scripts/profile/sizes.js)`);
  // The killed calls, one row each (issue 17: none of them reachable).
  const killedRows = (text: string) => text.split("\n").filter((l) => /^\| `[a-z0-9_]+` \| @/.test(l));
  assert.ok(killedRows(r.stdout).length > 5, r.stdout);
  assert.deepEqual(killedRows(docs), killedRows(r.stdout), "docs/profiles.md's table of killed calls (node dist/scripts/profile/sizes.js)");
  assert.match(r.stdout, /\| killed, reachable \|/);
  for (const p of printed) assert.equal(p[9], "0", `${p[0]}: a reachable call is killed`);
  // sizes.js DIR reads another directory (an older checkout's profiles/) the same way.
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-sizes-"));
  try {
    copyFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), join(dir, "postgresql-15-x86_64.conf"));
    const one = spawnSync(process.execPath, [script("sizes"), dir], { encoding: "utf8" });
    assert.equal(one.status, 0, one.stderr);
    assert.deepEqual(one.stdout.split("\n").filter((l) => /^\| postgresql-/.test(l)).map(row), printed.filter((p) => p[0] === "postgresql-15-x86_64.conf"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sizes.js --policy counts another policy (a learned one) and its recall against the strace rounds of a profile", () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-sizes-"));
  try {
    const bundled = readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8");
    const row = (l: string) => l.split("|").slice(1, -1).map((c) => c.trim());
    const rowsOf = (out: string) => out.split("\n").filter((l) => /^\| [a-z]/.test(l) && !/^\| (profile|policy) \|/.test(l)).map(row);
    // The profile itself, under another name (its arch from its "# arch:" line): the counts of
    // its row in the sizes table, and every call of its strace rounds allowed.
    writeFileSync(join(dir, "learned.conf"), bundled);
    const same = spawnSync(process.execPath, [script("sizes"), "--policy", join(dir, "learned.conf"), "--strace", repoPath("profiles/postgresql-15-x86_64.conf")], { encoding: "utf8" });
    assert.equal(same.status, 0, same.stderr);
    const all = spawnSync(process.execPath, [script("sizes")], { encoding: "utf8" });
    const bundledRow = rowsOf(all.stdout).find((r) => r[0] === "postgresql-15-x86_64.conf")!;
    const [counts, recall] = rowsOf(same.stdout);
    assert.deepEqual(counts!.slice(1), bundledRow.slice(1));
    assert.equal(recall![0], "learned.conf (against postgresql-15-x86_64.conf)");
    assert.deepEqual(recall!.slice(4), ["0", "0", "100.0%", "none"], same.stdout);
    // A policy that lost a seen call (brk) and a reachable member of a killed group (capset, in
    // @privileged): brk is denied by default and lowers the recall, capset is killed and reachable.
    const broken = bundled
      .replace(/^(global_syscall_allow = '.*)\bbrk, /m, "$1")
      .replace(/^(global_syscall_log = '.*)\bcapset, /m, "$1");
    assert.notEqual(broken, bundled);
    writeFileSync(join(dir, "broken.conf"), broken);
    const b = spawnSync(process.execPath, [script("sizes"), "--policy", join(dir, "broken.conf"), "--strace", repoPath("profiles/postgresql-15-x86_64.conf")], { encoding: "utf8" });
    assert.equal(b.status, 0, b.stderr);
    const [bc, br] = rowsOf(b.stdout);
    assert.equal(bc![9], "1", `killed, reachable: ${b.stdout}`);
    assert.deepEqual(br!.slice(4, 5).concat(br!.slice(7)), ["1", "brk"], b.stdout);
    assert.notEqual(br![6], "100.0%");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
