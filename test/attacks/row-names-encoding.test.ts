// The row cross-check (docs/design.md, "Classification", fact 4) against a legitimate session of
// a cluster whose encoding is not UTF-8. Not an attacker: a DBA's normal operation. A LATIN1
// cluster (here: its `postgres` database, where the monitor logs in, recreated as LATIN1) with a
// role called "jürgen", who logs in from a LATIN1 client: the startup packet, and so the session's
// own Port, holds the name's LATIN1 bytes ("j\xfcrgen"), while the monitor reads the row with
// client_encoding UTF8 (the server converts: "jürgen"). The launcher decodes the Port's bytes as
// UTF-8 ("j\ufffdrgen"), sees a mismatch and pins jürgen's session to the most restrictive
// context ("inconsistent: the server's row names role ..."): a session the policy lets exec
// cannot, and every session of a role or database named outside ASCII in such a cluster is
// denied what its policy allows.
// Fixed: the Port's bytes are decoded as the monitor's server_encoding converts them to UTF8
// (src/host/backend-identity.ts, nameDecoder: LATIN1 as ISO 8859-1, UTF8, SQL_ASCII, and the
// other single- and multi-byte encodings Node decodes; an encoding it does not know compares
// ASCII names only).

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { integrationSkip, newCluster, startReady, stop, writePolicy } from "../support/server.js";
import { hostProfilePath } from "../support/paths.js";

const skip = integrationSkip();
const profile = readFileSync(hostProfilePath(), "utf8");
const COPY = "copy (select 1) to program 'cat > /dev/null'";

let cluster: Cluster;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
});
after(() => {
  if (cluster) destroyCluster(cluster);
});

/** A LATIN1 client logging in as "jürgen" (the name's LATIN1 bytes: the shell writes them, Node's strings cannot). */
function jurgenExecs(): Promise<{ stdout: string; stderr: string }> {
  const p = spawn("bash", ["-c", `PGUSER=$'j\\xfcrgen' exec "$0" -X -v ON_ERROR_STOP=1 -c "$1"`, join(cluster.binDir, "psql"), COPY], {
    env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGDATABASE: "postgres", PGCLIENTENCODING: "LATIN1" },
  });
  let stdout = "";
  let stderr = "";
  p.stdout.on("data", (d) => (stdout += d));
  p.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) => p.on("exit", () => resolve({ stdout, stderr })));
}

test("a LATIN1 cluster's role named outside ASCII gets its own context (the cross-check compares the names in the server's encoding)", {
  skip,
  timeout: 120_000,
}, async () => {
  const policy = writePolicy(`${profile}\nsession_syscall_error = '*, execve'\nsession_syscall_allow."jürgen" = '*, execve'\n`);
  const s = await startReady(cluster, ["--policy", policy]);
  try {
    // The monitor logs into `postgres`: make it LATIN1, as initdb -E LATIN1 would.
    const recreate = psql(cluster, "drop database postgres with (force)", { db: "template1" });
    assert.ok(recreate.ok, recreate.stderr);
    query(cluster, "create database postgres template template0 encoding 'LATIN1' lc_collate 'C' lc_ctype 'C'", { db: "template1" });
    // ASCII-only SQL: chr(252) is ü in a LATIN1 database.
    query(cluster, "do $$ begin execute format('create role %I login in role pg_execute_server_program', 'j' || chr(252) || 'rgen'); end $$");
    const r = await jurgenExecs();
    assert.doesNotMatch(r.stderr, /authentication failed|does not exist/, `jürgen logs in: ${r.stderr}`);
    // The control that the session was classified by its row: the role's own rules decide.
    assert.match(r.stdout, /COPY 1/, `jürgen's session may exec (session_syscall_allow.jürgen):\n${r.stdout}\n${r.stderr}\n${s.stderr().slice(-2000)}`);
    await new Promise((res) => setTimeout(res, 500));
    assert.doesNotMatch(s.stderr(), /inconsistent: the server's row names role/, "no inconsistency is reported for a legitimate session");
  } finally {
    await stop(s);
  }
});

