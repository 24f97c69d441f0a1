// Throwaway PostgreSQL clusters for the demo, learning runs and the integration tests: find the
// server's binaries, initdb into a temp dir owned by the server's OS user, and talk to the
// server with psql and pgbench. Starting the server is the launcher's job (it must start under
// a filter); this module only prepares and queries.

import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { EMBEDDED_MAJORS, preparedEmbeddedBinDir } from "./embedded.js";
import { readPostmasterPidFile } from "../host/server-files.js";
import { runPsqlSync } from "../host/psql.js";
import { PgSeccompError, type ErrorKind } from "../errors.js";

/** A server, binary or OS user that is not what pg_seccomp needs: said to the user, not a bug (exit 1; "usage" for a bad --user). */
export class PostgresError extends PgSeccompError {
  override name = "PostgresError";
  constructor(message: string, kind: ErrorKind = "runtime") {
    super(kind, message);
  }
}

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
  /** The passwd entry's home directory and login shell (when looked up). */
  home?: string;
  shell?: string;
}

/** Looks up a user with getent (no libc calls needed). */
export function lookupUser(name: string): OsUser {
  const r = spawnSync("getent", ["passwd", name], { encoding: "utf8" });
  const fields = r.stdout?.trim().split(":");
  if (r.status !== 0 || !fields || fields.length < 4) {
    throw new PostgresError(`there is no OS user "${name}"; create it, or pass --user with an existing user`, "usage");
  }
  return {
    name: fields[0]!, uid: Number(fields[2]), gid: Number(fields[3]),
    ...(fields[5] ? { home: fields[5] } : {}), ...(fields[6] ? { shell: fields[6] } : {}),
  };
}

/** The user the server runs as: `postgres` when we are root, else ourselves. */
export function defaultServerUser(): OsUser {
  if (process.getuid?.() === 0) return lookupUser("postgres");
  const me = userInfo();
  return { name: me.username, uid: me.uid, gid: me.gid };
}

/**
 * The directory holding `postgres`: Debian's (/usr/lib/postgresql/N/bin), newest major first, or
 * for a given major Debian's if installed, else the embedded build the repository installs as a
 * devDependency (embedded.ts; tests and profile building).
 */
export function findPgBinDir(major?: number): string {
  const candidates = major !== undefined ? [major] : [18, 17, 16, 15, 14, 13];
  for (const v of candidates) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (existsSync(join(dir, "postgres"))) return dir;
  }
  if (major !== undefined && (EMBEDDED_MAJORS as readonly number[]).includes(major)) {
    const dir = preparedEmbeddedBinDir(major);
    if (typeof dir === "string") return dir;
    throw new PostgresError(`PostgreSQL ${major} is not installed in /usr/lib/postgresql/${major}/bin, and ${dir.missing}`);
  }
  throw new PostgresError(
    `PostgreSQL${major ? " " + major : ""} is not installed (looked in /usr/lib/postgresql/*/bin)`,
  );
}

/** The server's major version, from `postgres --version`. */
export function postgresMajorVersion(postgres: string): number {
  let out: string;
  try {
    out = execFileSync(postgres, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 });
  } catch (e) {
    throw new PostgresError(`cannot run ${postgres} --version: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message.split("\n")[0]}`, "usage");
  }
  const m = /\(PostgreSQL\) (\d+)/.exec(out);
  if (!m) throw new PostgresError(`${postgres} is not a PostgreSQL server: its --version says "${out.trim().split("\n")[0]}"`, "usage");
  return Number(m[1]);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface Cluster {
  binDir: string;
  /** The temp directory holding everything; removed by destroy(). */
  root: string;
  dataDir: string;
  /** Unix socket directory (also the host for clients). */
  socketDir: string;
  port: number;
  user: OsUser;
}

export interface CreateClusterOptions {
  binDir?: string;
  /** The major version to find (findPgBinDir) when binDir is not given. */
  major?: number;
  user?: OsUser;
  /** Extra postgresql.conf lines. */
  conf?: string[];
}

/** initdb into a fresh temp dir owned by the server's user. */
export async function createCluster(opts: CreateClusterOptions = {}): Promise<Cluster> {
  const binDir = opts.binDir ?? findPgBinDir(opts.major);
  const user = opts.user ?? defaultServerUser();
  const root = mkdtempSync(join(tmpdir(), "pg_seccomp-"));
  chmodSync(root, 0o755);
  const dataDir = join(root, "data");
  const socketDir = join(root, "sock");
  mkdirSync(socketDir);
  chownSync(socketDir, user.uid, user.gid);
  chownSync(root, user.uid, user.gid);
  const r = spawnSync(join(binDir, "initdb"), ["-D", dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"], {
    uid: user.uid,
    gid: user.gid,
    encoding: "utf8",
    cwd: root,
  });
  if (r.status !== 0) {
    rmSync(root, { recursive: true, force: true });
    throw new PostgresError(`initdb failed: ${r.stderr || r.stdout}`);
  }
  const port = await freePort();
  const conf = [
    `port = ${port}`,
    `unix_socket_directories = '${socketDir}'`,
    "listen_addresses = ''",
    "fsync = off",
    "shared_buffers = 32MB",
    "max_connections = 40",
    ...(opts.conf ?? []),
  ];
  appendFileSync(join(dataDir, "postgresql.conf"), "\n# pg_seccomp test cluster\n" + conf.join("\n") + "\n");
  return { binDir, root, dataDir, socketDir, port, user };
}

export function destroyCluster(c: Cluster): void {
  rmSync(c.root, { recursive: true, force: true });
}

/** Arguments for `postgres` itself (what `run -- postgres ...` gets). */
export function postgresArgs(c: Cluster): string[] {
  return [join(c.binDir, "postgres"), "-D", c.dataDir];
}

function clientEnv(c: Cluster): NodeJS.ProcessEnv {
  return { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: "postgres", PGDATABASE: "postgres" };
}

export interface QueryResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Runs SQL through psql (as the server's OS user, so files it writes belong to it). */
export function psql(c: Cluster, sql: string, opts: { db?: string; role?: string } = {}): QueryResult {
  const connect = [...(opts.db ? ["-d", opts.db] : []), ...(opts.role ? ["-U", opts.role] : [])];
  return runPsqlSync({ psql: join(c.binDir, "psql"), sql, connect, env: clientEnv(c) });
}

/** psql that throws on failure and returns trimmed output. */
export function query(c: Cluster, sql: string, opts: { db?: string; role?: string } = {}): string {
  const r = psql(c, sql, opts);
  if (!r.ok) throw new PostgresError(`query failed: ${sql}\n${r.stderr}`);
  return r.stdout.trim();
}

export function pgbench(c: Cluster, args: string[], opts: { timeoutMs?: number } = {}): QueryResult {
  const r = spawnSync(join(c.binDir, "pgbench"), args, { env: clientEnv(c), encoding: "utf8", timeout: opts.timeoutMs ?? 300_000 });
  return { ok: r.status === 0, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** Waits until the server accepts connections, or fails when `alive()` says it died. */
export async function waitReady(c: Cluster, alive: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new PostgresError("the server exited before accepting connections");
    const r = spawnSync(join(c.binDir, "pg_isready"), ["-q"], { env: clientEnv(c) });
    if (r.status === 0) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new PostgresError(`the server did not accept connections within ${timeoutMs / 1000} s`);
}

/** The postmaster's pid from postmaster.pid, if the file is there. */
export function postmasterPid(dataDir: string): number | undefined {
  return readPostmasterPidFile(dataDir)?.pid;
}

/**
 * A server setting as the server itself would read it from its configuration files
 * (`postgres -C NAME -D DATADIR`, run as the server's user: postgres refuses root). Those files
 * belong to the server's user and are hostile input to a root launcher, so their parsing is left
 * to postgres, running without privileges, and only a bounded, plain answer is accepted: at most
 * 4 KiB of output within 10 s, a value of letters, digits and underscores. Undefined when postgres
 * cannot say (an unknown setting on this major, a broken configuration).
 */
export function serverSetting(postgres: string, dataDir: string, user: OsUser | undefined, name: string): string | undefined {
  if (!/^[a-z_]+$/.test(name)) throw new PostgresError(`not a setting name: ${name}`);
  const r = spawnSync(postgres, ["-C", name, "-D", dataDir], {
    encoding: "utf8",
    timeout: 10_000,
    maxBuffer: 4096,
    stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: "/usr/bin:/bin", LANG: "C" },
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  if (r.status !== 0 || r.error) return undefined;
  const value = r.stdout.trim();
  return /^[A-Za-z0-9_]{1,64}$/.test(value) ? value : undefined;
}
