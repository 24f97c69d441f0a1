// Attacks on the exec gate's exception for the server's own code (docs/design.md, "The exec gate
// and the server's own modules"; src/host/server-code.ts): an unclassified process may map
// plpgsql.so without being classified, matched by device and inode, never by name.
//
// (a) The server's OS user writes a library named plpgsql.so, and a superuser's session loads it
//     through dynamic_library_path (LOAD 'plpgsql'). Its constructor forges its own status row to
//     name alice (who may exec) and execs: the mapping must have classified the process first
//     (as postgres, who may not), so the exec is denied.
// (b) A superuser declares a C function on plpgsql.so (already mapped, without classification)
//     naming a libc function, which dlsym would find through plpgsql.so's dependencies: PostgreSQL
//     refuses a symbol without its PG_FUNCTION_INFO_V1 record, so only PL/pgSQL's own three
//     entry points are reachable that way.
// (c) plpgsql in shared_preload_libraries: mapped in the postmaster, inherited by every backend;
//     the role's rules still decide each session's exec.
// (d) An upgrade replaces plpgsql.so while the server runs (dpkg writes a new file and renames
//     it over the old): once no process maps the old file its inode is free, and the next file
//     created in its block group gets its number on the same device. The server's OS user creates
//     files (the fake of (a)) until one has the recorded device and inode, and its superuser
//     session LOADs it: were the launcher's record only numbers, the fake would run unclassified.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, copyFileSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { integrationSkip, newCluster, pg15BinDir, startReady, stop, writePolicy, type RunningServer } from "../support/server.js";
import { repoPath, hostProfilePath } from "../support/paths.js";

const skip = integrationSkip() || (spawnSync("cc", ["--version"]).status !== 0 ? "no C compiler (cc)" : false);
const profile = readFileSync(hostProfilePath(), "utf8");
const policyText = `${profile}\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n`;
const COPY = "copy (select 1) to program 'cat > /dev/null'";

let cluster: Cluster;
let dir: string;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-servercode-attack-"));
  chmodSync(dir, 0o755);
});
after(() => {
  if (cluster) destroyCluster(cluster);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Stats {
  serverCodeMappings: number;
  classifications: number;
}

const postgresUid = (): number => Number(spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout.trim());

/** The fake plpgsql.so of (a): forges its row to name `role` and execs; reports to `out`. */
function compileFake(path: string, out: string, role: string): void {
  const cc = spawnSync("cc", ["-shared", "-fPIC", "-O1", `-DOUT="${out}"`, `-DFORGED_ROLE=${role}`, "-o", path, repoPath("test/fixtures/attack/fake-plpgsql.c")], { encoding: "utf8" });
  assert.equal(cc.status, 0, cc.stderr);
}

async function startWithStats(c: Cluster = cluster): Promise<{ s: RunningServer; stats: () => Stats }> {
  const was = process.env.PG_SECCOMP_STATS;
  process.env.PG_SECCOMP_STATS = "1";
  let s: RunningServer;
  try {
    s = await startReady(c, ["--policy", writePolicy(policyText)]);
  } finally {
    if (was === undefined) delete process.env.PG_SECCOMP_STATS;
    else process.env.PG_SECCOMP_STATS = was;
  }
  const stats = (): Stats => {
    const line = s.stderr().split("\n").find((l) => l.startsWith('{"pg_seccomp_stats"'));
    assert.ok(line, `the launcher's stats line:\n${s.stderr().slice(-2000)}`);
    return (JSON.parse(line) as { pg_seccomp_stats: Stats }).pg_seccomp_stats;
  };
  return { s, stats };
}

test("server code attacks: a plpgsql.so that is not the server's classifies first; C functions on plpgsql.so reach no libc symbol", { skip, timeout: 180_000 }, async () => {
  const { s, stats } = await startWithStats();
  let out = "";
  try {
    query(cluster, "create role alice login in role pg_execute_server_program; create role bob login in role pg_execute_server_program");
    const alice = query(cluster, "select 'alice'::regrole::oid");
    // (a) The server's OS user's plpgsql.so (its own file, in a directory it owns).
    const own = join(dir, "own");
    spawnSync("install", ["-d", "-o", "postgres", "-g", "postgres", "-m", "0755", own]);
    out = join(dir, "fake.txt");
    writeFileSync(out, "");
    chmodSync(out, 0o666);
    const fake = join(own, "plpgsql.so");
    compileFake(fake, out, alice);
    chownSync(fake, postgresUid(), postgresUid());
    // Genuine PL/pgSQL first in this session (mapped without classification), then the fake.
    const r = psql(cluster, `do $$ begin perform 1; end $$; set dynamic_library_path = '${own}:$libdir'; load 'plpgsql'`);
    assert.match(r.stderr, /magic block/, "the fake was mapped (its constructor ran, then LOAD refused it)");
    const got = readFileSync(out, "utf8");
    assert.match(got, /^exec /m, `the fake's constructor ran: ${JSON.stringify(got)}`);
    assert.doesNotMatch(got, /^exec 0$/m, "the fake's exec ran as alice's: its mapping did not classify the process first");
    // (b) plpgsql.so as a door to libc (dlsym searches its dependencies) for a superuser.
    const libc = psql(cluster, "do $$ begin perform 1; end $$; create function libc_getpid() returns int4 as '$libdir/plpgsql', 'getpid' language c");
    assert.equal(libc.ok, false, "a libc symbol through plpgsql.so is refused");
    assert.match(libc.stderr, /could not find function information for function "getpid"/);
  } finally {
    await stop(s);
  }
  const st = stats();
  assert.ok(st.serverCodeMappings >= 1, `the genuine plpgsql.so was mapped without classification: ${JSON.stringify(st)}`);
  assert.ok(st.classifications >= 1, `the fake's mapping classified its process: ${JSON.stringify(st)}`);
});

test("plpgsql in shared_preload_libraries: mapped in the postmaster; each session's exec is still its role's", { skip, timeout: 180_000 }, async () => {
  let s = await startReady(cluster, ["--policy", writePolicy(policyText)]);
  try {
    query(cluster, "alter system set shared_preload_libraries = 'plpgsql'");
  } finally {
    await stop(s);
  }
  s = await startReady(cluster, ["--policy", writePolicy(policyText)]);
  try {
    assert.equal(query(cluster, "show shared_preload_libraries"), "plpgsql");
    const bob = psql(cluster, `do $$ begin perform 1; end $$; ${COPY}`, { role: "bob" });
    assert.equal(bob.ok, false, "bob's session may not exec");
    const alice = psql(cluster, `do $$ begin perform 1; end $$; ${COPY}`, { role: "alice" });
    assert.ok(alice.ok, alice.stderr);
    query(cluster, "alter system reset shared_preload_libraries");
  } finally {
    await stop(s);
  }
});

test("(d) plpgsql.so replaced while the server runs: a file of the server's user that gets the old inode number is not the server's code", { skip: skip || (!pg15BinDir() && "no Debian PostgreSQL 15"), timeout: 180_000 }, async () => {
  // An installation of root's in its own directory (PREFIX/usr/lib/postgresql/15/{bin,lib}, the
  // share directory a link to Debian's), so its plpgsql.so can be replaced as an upgrade would.
  const inst = mkdtempSync(join(tmpdir(), "pg_seccomp-inst-"));
  chmodSync(inst, 0o755);
  try {
    const major = join(inst, "usr/lib/postgresql/15");
    mkdirSync(join(major, "bin"), { recursive: true });
    mkdirSync(join(major, "lib"));
    mkdirSync(join(inst, "usr/share/postgresql"), { recursive: true });
    symlinkSync("/usr/share/postgresql/15", join(inst, "usr/share/postgresql/15"));
    for (const f of readdirSync(pg15BinDir()!)) {
      const from = join(pg15BinDir()!, f);
      const to = join(major, "bin", f);
      try {
        linkSync(from, to);
      } catch {
        copyFileSync(from, to); // another file system (a tmpfs /tmp)
        chmodSync(to, statSync(from).mode & 0o7777);
      }
    }
    const module = join(major, "lib/plpgsql.so");
    copyFileSync("/usr/lib/postgresql/15/lib/plpgsql.so", module);
    chmodSync(module, 0o644);
    const old = statSync(module);
    // The server's OS user's directory on the same file system, and its fake.
    const own = join(inst, "own");
    spawnSync("install", ["-d", "-o", "postgres", "-g", "postgres", "-m", "0755", own]);
    const out = join(inst, "fake.txt");
    writeFileSync(out, "");
    chmodSync(out, 0o666);
    const c: Cluster = { ...cluster, binDir: join(major, "bin") };
    const { s } = await startWithStats(c);
    let reused: string | undefined;
    try {
      assert.doesNotMatch(s.stderr(), /not taken as the server's own code/, "the installation's plpgsql.so is taken");
      psql(c, "create role alice login in role pg_execute_server_program"); // when (a) did not run
      const alice = query(c, "select 'alice'::regrole::oid");
      const built = join(inst, "fake.so");
      compileFake(built, out, alice);
      // The upgrade: a new file renamed over the old one (no process has the old one mapped).
      copyFileSync(module, `${module}.dpkg-new`);
      renameSync(`${module}.dpkg-new`, module);
      // The server's user makes files until one gets the old number (kept otherwise: they fill the lower free slots).
      for (let i = 0; i < 2000 && reused === undefined; i++) {
        const f = join(own, `f${i}.so`);
        copyFileSync(built, f);
        chownSync(f, postgresUid(), postgresUid());
        const st = statSync(f);
        if (st.ino === old.ino && st.dev === old.dev) reused = f;
      }
      if (reused !== undefined) {
        const r = psql(c, `load '${reused}'`);
        assert.match(r.stderr, /magic block/, "the fake was mapped (its constructor ran, then LOAD refused it)");
        const got = readFileSync(out, "utf8");
        assert.match(got, /^exec /m, `the fake's constructor ran: ${JSON.stringify(got)}`);
        assert.doesNotMatch(got, /^exec 0$/m, "a file of the server's user with the old plpgsql.so's device and inode ran unclassified: its forged row let it exec");
      }
    } finally {
      await stop(s);
    }
  } finally {
    rmSync(inst, { recursive: true, force: true });
  }
});
