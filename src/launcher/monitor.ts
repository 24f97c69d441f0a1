// The launcher's monitoring connection: one long-lived psql session to the server, over its Unix
// socket, as the server's OS user. The classifier asks it for a child's pg_stat_activity row and
// the supervisor for a denied session's running statement.
//
// Why this is safe to wait on: nothing waits on it synchronously. Every query is asynchronous,
// has a deadline (after which the session is dropped and opened again later), and its answers
// are bounded lines of JSON that are validated before use. The session pins search_path to
// pg_catalog and names every object and operator schema-qualified, so objects a superuser
// creates elsewhere cannot stand in for the catalog's; lock_timeout and statement_timeout keep a
// locked catalog from stalling it. What it reports is what the server says: the classifier
// cross-checks it with kernel facts (classify.ts).

import { spawn, type ChildProcess } from "node:child_process";
import type { ActivityRow } from "../classify/classify.js";
import { readPostmasterPidFile } from "../host/server-files.js";

export interface MonitorOptions {
  psqlPath: string;
  dataDir: string;
  /** Run psql as this user (the server's), so that peer authentication maps it to its role. */
  user?: { uid: number; gid: number; name: string };
  /** Role to connect as (PGUSER); the server user's name by default. */
  role?: string;
  queryTimeoutMs?: number;
}

const MAX_LINE = 64 * 1024;

/** pg_stat_get_activity's OID in every major since 9.x (pg_proc.dat), and its C symbol. */
const PG_STAT_GET_ACTIVITY_OID = 2022;
const BUILTIN_CHECK =
  "(select p.prolang OPERATOR(pg_catalog.=) 12 and p.prosrc OPERATOR(pg_catalog.=) 'pg_stat_get_activity' " +
  "from pg_catalog.pg_proc p where p.oid OPERATOR(pg_catalog.=) " + PG_STAT_GET_ACTIVITY_OID + " and p.proname OPERATOR(pg_catalog.=) 'pg_stat_get_activity')";

interface Waiting {
  tag: string;
  lines: string[];
  resolve: (lines: string[] | undefined) => void;
  timer: NodeJS.Timeout;
}

/** Reads the postmaster.pid file's port, socket directory and status line. */
export function postmasterPidFile(dataDir: string): { port: string; socketDir: string; status: string } | undefined {
  // postmaster.pid is the server's file: read without following a link or blocking, at most
  // 4 KiB (src/host/server-files.ts), and only three short fields used.
  const f = readPostmasterPidFile(dataDir);
  return f?.port && f.socketDir ? { port: f.port, socketDir: f.socketDir, status: f.status } : undefined;
}

export class MonitorConnection {
  private proc: ChildProcess | undefined;
  private buffer = "";
  private queue: Waiting[] = [];
  private seq = 0;
  private ready = false;
  private starting = false;
  closed = false;
  private nextAttempt = 0;
  private failures = 0;
  /** Queries sent and sessions opened (PG_SECCOMP_STATS). */
  queries = 0;
  sessions = 0;
  /** The monitoring session's own backend pid. */
  backendPid: number | undefined;

  constructor(private readonly opts: MonitorOptions) {}

  /** The role the session logs in as. */
  get role(): string {
    return this.opts.role ?? this.opts.user?.name ?? process.env.PGUSER ?? "postgres";
  }

  get up(): boolean {
    return this.ready && !this.closed;
  }

  /** The session is being opened: its own backend may be the process asking to be classified. */
  get opening(): boolean {
    return this.starting && !this.closed;
  }

  /** The psql process holding the session (its backend's client is this pid). */
  get psqlPid(): number | undefined {
    return this.proc?.pid;
  }

  /** Opens the session if the server accepts connections and it is not open (retries at most every second). */
  ensure(): void {
    if (this.closed || this.proc || this.starting || Date.now() < this.nextAttempt) return;
    // The first attempts come quickly (the server has just become ready), later ones once a second.
    const addr = postmasterPidFile(this.opts.dataDir);
    if (!addr || !/^(ready|standby)$/.test(addr.status)) return;
    this.nextAttempt = Date.now() + (this.failures++ < 5 ? 100 : 1000);
    this.starting = true;
    this.sessions++;
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      PGHOST: addr.socketDir,
      PGPORT: addr.port,
      PGDATABASE: "postgres",
      PGUSER: this.role,
      PGCONNECT_TIMEOUT: "2",
      PGAPPNAME: "pg_seccomp monitor",
      PGCLIENTENCODING: "UTF8",
    };
    const p = spawn(this.opts.psqlPath, ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0"], {
      stdio: ["pipe", "pipe", "ignore"],
      env,
      ...(this.opts.user ? { uid: this.opts.user.uid, gid: this.opts.user.gid } : {}),
    });
    this.proc = p;
    p.on("error", () => this.drop());
    p.on("exit", () => this.drop());
    p.stdout!.setEncoding("utf8");
    p.stdout!.on("data", (d: string) => this.onData(d));
    p.stdin!.on("error", () => this.drop());
    // The session's settings, then its own pid (its calls are classified like anyone's, but the
    // log can tell it apart).
    this.send(
      "set search_path = pg_catalog, pg_temp; set statement_timeout = '2s'; set lock_timeout = '200ms'; " +
        "set idle_in_transaction_session_timeout = 0;\nselect pg_catalog.pg_backend_pid();",
    ).then((lines) => {
      this.starting = false;
      const pid = Number(lines?.[0]);
      if (!lines || !Number.isInteger(pid)) return this.drop();
      this.backendPid = pid;
      this.ready = true;
      this.failures = 0;
    });
  }

  /** Resolves when the session is up, or after `ms` (false). */
  async whenUp(ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    while (!this.up && !this.closed && Date.now() < until) {
      this.ensure();
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.up;
  }

  /** The server's row for a pid, "none" when it has none, undefined when it could not be asked. */
  async activity(pid: number): Promise<ActivityRow | "none" | undefined> {
    if (!this.up) return undefined;
    // The row comes only if pg_stat_get_activity is still the built-in C function (a superuser
    // could replace it with a SQL function of the same name and OID); otherwise no answer.
    const lines = await this.send(
      "select pg_catalog.json_build_object('builtin', " + BUILTIN_CHECK + ", 'type', s.backend_type, 'role', a.rolname, 'database', d.datname)::text " +
        "from pg_catalog.pg_stat_get_activity(" + Math.trunc(pid) + ") s " +
        "left join pg_catalog.pg_authid a on a.oid OPERATOR(pg_catalog.=) s.usesysid " +
        "left join pg_catalog.pg_database d on d.oid OPERATOR(pg_catalog.=) s.datid " +
        "where s.pid OPERATOR(pg_catalog.=) " + Math.trunc(pid) + ";",
    );
    if (!lines) return undefined;
    if (lines.length === 0) return "none";
    const row = parseJsonObject(lines[0]!);
    if (!row || typeof row.type !== "string" || row.builtin !== true) return undefined;
    return {
      backendType: row.type,
      ...(typeof row.role === "string" ? { role: row.role } : {}),
      ...(typeof row.database === "string" ? { database: row.database } : {}),
    };
  }

  /**
   * A backend's running statement, with its role and database (by OID), for the log only: a
   * decision never rests on them (the classifier's row does).
   */
  async statement(pid: number): Promise<{ query?: string; role?: string; database?: string } | undefined> {
    if (!this.up && !(await this.whenUp(250))) return undefined;
    const lines = await this.send(
      "select pg_catalog.json_build_object('query', s.query, 'role', a.rolname, 'database', d.datname)::text " +
        "from pg_catalog.pg_stat_get_activity(" + Math.trunc(pid) + ") s " +
        "left join pg_catalog.pg_authid a on a.oid OPERATOR(pg_catalog.=) s.usesysid " +
        "left join pg_catalog.pg_database d on d.oid OPERATOR(pg_catalog.=) s.datid " +
        "where s.pid OPERATOR(pg_catalog.=) " + Math.trunc(pid) + ";",
    );
    const row = lines?.[0] !== undefined ? parseJsonObject(lines[0]) : undefined;
    if (!row) return undefined;
    const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
    const query = str(row.query), role = str(row.role), database = str(row.database);
    return { ...(query ? { query } : {}), ...(role ? { role } : {}), ...(database ? { database } : {}) };
  }

  close(): void {
    this.closed = true;
    this.drop();
  }

  /** Sends SQL followed by a marker; resolves with the lines before the marker, or undefined on timeout or loss. */
  private send(sql: string): Promise<string[] | undefined> {
    const p = this.proc;
    if (!p || !p.stdin || this.queue.length >= 64) return Promise.resolve(undefined);
    const tag = `__pg_seccomp_${process.pid}_${++this.seq}__`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // A stuck session is dropped: every waiter gets undefined, and it is opened again later.
        this.drop();
      }, this.opts.queryTimeoutMs ?? 3000);
      this.queue.push({ tag, lines: [], resolve, timer });
      this.queries++;
      p.stdin!.write(`${sql}\n\\echo ${tag}\n`);
    });
  }

  private onData(d: string): void {
    this.buffer += d;
    if (this.buffer.length > 4 * MAX_LINE && !this.buffer.includes("\n")) return this.drop();
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      const head = this.queue[0];
      if (!head) continue;
      if (line === head.tag) {
        this.queue.shift();
        clearTimeout(head.timer);
        head.resolve(head.lines);
      } else if (line.length <= MAX_LINE && head.lines.length < 16) {
        head.lines.push(line);
      }
    }
  }

  private drop(): void {
    const p = this.proc;
    this.proc = undefined;
    this.ready = false;
    this.starting = false;
    this.backendPid = undefined;
    this.buffer = "";
    const waiting = this.queue;
    this.queue = [];
    for (const w of waiting) {
      clearTimeout(w.timer);
      w.resolve(undefined);
    }
    if (p && p.exitCode === null) {
      try {
        p.kill("SIGKILL");
      } catch {
        /* gone */
      }
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  const v = safeJson(text);
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}
