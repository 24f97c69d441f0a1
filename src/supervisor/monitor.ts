// The launcher's monitor: asks the server for a child's pg_stat_activity row (the classifier)
// and a denied session's running statement (the log), over a PostgreSQL connection of its own
// (src/host/pgwire.ts: no psql needed), as the server's OS user (peer or trust authentication).
//
// The API (for the classifier, src/supervisor/classification.ts):
//
//   ask(pid) → MonitorAnswer, one of
//     { kind: "row", row }   the server's row for the pid, checked as below;
//     { kind: "none" }       the server answered, verified, and has no row for the pid;
//     { kind: "unknown" }    no answer: the monitor is down, reconnecting, or timed out. The
//                            caller gives the most restrictive SQL context for this call;
//     { kind: "alarm" }      the answer cannot be trusted (the catalog was changed, the endpoint
//                            or the backend is not what the kernel says). Already reported through
//                            onAlarm; the caller gives the most restrictive SQL context and never
//                            falls back to titles.
//   isOwnBackend(pid, fd)    the kernel's word that `pid` holds the server end of the monitor's
//                            own connection (SO_PEERCRED of its client socket is this process).
//   onAlarm(why)             called (rate-limited by the caller) for every alarm: a catalog
//                            object changed, the session terminated by someone else, a server
//                            that does not pass the kernel checks.
//
// What it trusts, and why:
// - The endpoint is the Unix socket the postmaster itself listens on, as the kernel lists the
//   postmaster's sockets (/proc/PID/net/unix for the inodes it holds), never postmaster.pid (the
//   server's user rewrites that file). After connect(), the listener's SO_PEERCRED must be the
//   postmaster's pid: a socket file swapped in by the server's user is refused.
// - Its own backend is the postmaster's child whose accepted socket's SO_PEERCRED is this process
//   (only this process connects from here); BackendKeyData's pid is checked against that and
//   never used otherwise; pg_backend_pid() is never called.
// - The row comes from pg_catalog.pg_stat_get_activity, and the same statement returns the
//   pg_proc rows of that function (OID 2022) and of oideq (OID 184, behind the `=` operator 607
//   every join and lookup uses) and that operator's pg_operator row; the client compares them
//   with the built-in values (internal language, the expected prosrc, name, schema and argument
//   types). Any difference is an alarm. No other function, operator or view is used (no
//   json_build_object, no pg_stat_activity view, no pg_backend_pid).
//   Known limit: a superuser who changes pg_stat_get_activity's row gets its replacement run once
//   in the monitor's own backend (in the monitor role's session context) before the alarm; per-role
//   rules are not a boundary between superusers (docs/design.md, threat model).
// - The connection never holds a database a DBA copies, renames or drops for long: it is opened
//   on a question and closed after `idleCloseMs` without one (1 s; CREATE DATABASE and DROP
//   DATABASE wait up to 5 s for other sessions to leave). It logs into `postgres`, or `template1`
//   when `postgres` does not exist (docs/design.md, "The monitoring session").
// - Settings the session needs are startup parameters (they override ALTER ROLE/DATABASE SET):
//   search_path, statement_timeout, lock_timeout, read-only transactions.
// - Every wait has a deadline (connect is non-blocking; startup, queries: src/host/pgwire.ts);
//   a session lost while not closed by us (terminated, crashed) is an alarm, and the next
//   question reconnects after a bounded backoff (100 ms doubling to 5 s).

import { TIME_SCALE } from "./time-scale.js";
import type { ActivityRow } from "../classify/classify.js";
import { PgWireConnection, PgWireError, type ResultSet } from "../host/pgwire.js";
import { readParentAndStart } from "../host/proc.js";
import { clientConnection, listenSockets } from "../host/sockets.js";
import { close as closeFd, connectUnixStream, socketPeerCredentials, socketPeerPid } from "../kernel/index.js";

export interface MonitorOptions {
  postmasterPid: number;
  /** Connect as this user (the server's), so that peer authentication maps it to its role. */
  user?: { uid: number; gid: number; name: string };
  /** Role to log in as; the server user's name by default. */
  role?: string;
  queryTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Close the connection after this long without a question (ms). */
  idleCloseMs?: number;
  /** Databases to log into, in order (the next one when a database does not exist). */
  databases?: readonly string[];
  onAlarm?: (why: string) => void;
  /**
   * "extended" (default): a named statement, parsed once per connection, then Bind/Execute.
   * "simple": the statement's whole text each time (what bench/monitor-bench.ts compares with).
   */
  protocol?: "extended" | "simple";
}

export type MonitorAnswer =
  | { kind: "row"; row: ActivityRow; query?: string }
  | { kind: "none" }
  | { kind: "unknown"; why: string }
  | { kind: "alarm"; why: string };

/** Built-in catalog rows the monitor relies on (pg_proc.dat / pg_operator.dat, every major since 10). */
export const BUILTINS = {
  activity: { oid: "2022", proname: "pg_stat_get_activity", pronamespace: "11", prolang: "12", prosrc: "pg_stat_get_activity", proargtypes: "23" },
  oidEqOperator: { oid: "607", oprcode: "oideq" },
  oideq: { oid: "184", proname: "oideq", prolang: "12", prosrc: "oideq" },
} as const;

const CHECK_COLUMNS = [
  "p.oid", "p.proname", "p.pronamespace", "p.prolang", "p.prosrc", "p.proargtypes",
  "o.oid", "o.oprcode", "q.oid", "q.proname", "q.prolang", "q.prosrc",
];
const EXPECTED_CHECK = [
  ...Object.values(BUILTINS.activity), BUILTINS.oidEqOperator.oid, BUILTINS.oidEqOperator.oprcode, ...Object.values(BUILTINS.oideq),
];
const EQ = "OPERATOR(pg_catalog.=)";

/** The one statement per question: the catalog check and the pid's row, side by side. */
export function activityQuery(pid: number, withQuery: boolean): string {
  return activitySql(`'${checkedPid(pid)}'`, withQuery);
}

function checkedPid(pid: number): number {
  const p = Math.trunc(pid);
  if (!Number.isSafeInteger(p) || p <= 0 || p > 0x7fffffff) throw new RangeError(`not a pid: ${pid}`);
  return p;
}

/**
 * activityQuery as two named statements of the extended protocol ($1 the pid, an int4): parsed
 * once per monitoring connection, then only bound and executed. The catalog check runs on every
 * execution all the same (its columns are read from the rows each time), and a change to a
 * function the plan uses invalidates the plan in the server.
 */
export const ACTIVITY_STATEMENTS = {
  plain: Object.freeze({ name: "pg_seccomp_activity", sql: activitySql("$1", false), paramTypes: Object.freeze([23]) }),
  withQuery: Object.freeze({ name: "pg_seccomp_activity_query", sql: activitySql("$1", true), paramTypes: Object.freeze([23]) }),
} as const;

/** The parameters of ACTIVITY_STATEMENTS for `pid`. */
export function activityParams(pid: number): string[] {
  return [String(checkedPid(pid))];
}

function activitySql(pidExpr: string, withQuery: boolean): string {
  return (
    `select ${CHECK_COLUMNS.join(", ")}, s.pid, s.backend_type, a.rolname, d.datname${withQuery ? ", s.query" : ""} ` +
    `from pg_catalog.pg_proc p cross join pg_catalog.pg_operator o cross join pg_catalog.pg_proc q ` +
    `left join (pg_catalog.pg_stat_get_activity(${pidExpr}::pg_catalog.int4) s ` +
    `left join pg_catalog.pg_authid a on a.oid ${EQ} s.usesysid ` +
    `left join pg_catalog.pg_database d on d.oid ${EQ} s.datid) on true ` +
    `where p.oid ${EQ} '${BUILTINS.activity.oid}'::pg_catalog.oid and o.oid ${EQ} '${BUILTINS.oidEqOperator.oid}'::pg_catalog.oid ` +
    `and q.oid ${EQ} '${BUILTINS.oideq.oid}'::pg_catalog.oid`
  );
}

/** Reads activityQuery's answer: the row, "none", or why it cannot be trusted. */
export function readActivityAnswer(pid: number, sets: ResultSet[]): MonitorAnswer {
  if (sets.length !== 1) return { kind: "alarm", why: `the monitor's query gave ${sets.length} results` };
  const rows = sets[0]!.rows;
  if (rows.length === 0) return { kind: "alarm", why: "pg_proc or pg_operator lacks a built-in row the monitor checks (OID 2022, 184 or 607)" };
  const n = CHECK_COLUMNS.length;
  for (const r of rows) {
    for (let i = 0; i < n; i++) {
      if (r[i] !== EXPECTED_CHECK[i]) {
        return { kind: "alarm", why: `the catalog was changed: ${CHECK_COLUMNS[i]} is ${JSON.stringify(r[i]?.slice(0, 80) ?? null)}, built-in ${JSON.stringify(EXPECTED_CHECK[i])}` };
      }
    }
  }
  const mine = rows.filter((r) => r[n] !== null);
  if (mine.length === 0) return { kind: "none" };
  if (mine.length > 1 || mine[0]![n] !== String(pid)) return { kind: "alarm", why: `pg_stat_get_activity(${pid}) answered for another pid (${mine.map((r) => r[n]).join(", ")})` };
  const [, type, role, database, query] = mine[0]!.slice(n);
  if (!type) return { kind: "alarm", why: `pg_stat_get_activity(${pid}) gave no backend type` };
  return {
    kind: "row",
    row: { backendType: type, ...(role ? { role } : {}), ...(database ? { database } : {}) },
    ...(query ? { query } : {}),
  };
}

const STARTUP_PARAMS: Record<string, string> = {
  application_name: "pg_seccomp monitor",
  client_encoding: "UTF8",
  search_path: "pg_catalog, pg_temp",
  statement_timeout: "2s",
  lock_timeout: "200ms",
  idle_in_transaction_session_timeout: "0",
  default_transaction_read_only: "on",
};

export class MonitorConnection {
  private conn: PgWireConnection | undefined;
  private connecting: Promise<PgWireConnection | undefined> | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private waiting = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private nextAttempt = 0;
  private lastOpenAt = 0;
  private dbIndex = 0;
  closed = false;
  /** Queries sent and sessions opened (PG_SECCOMP_STATS). */
  queries = 0;
  sessions = 0;
  /** Alarms raised. */
  alarms = 0;
  /** The monitoring session's backend, as the kernel shows it (undefined while not connected). */
  backendPid: number | undefined;

  constructor(private readonly opts: MonitorOptions) {}

  /** The role the session logs in as. */
  get role(): string {
    return this.opts.role ?? this.opts.user?.name ?? "postgres";
  }

  /** The database the session logs into. */
  get database(): string {
    const dbs = this.opts.databases ?? ["postgres", "template1"];
    return dbs[Math.min(this.dbIndex, dbs.length - 1)]!;
  }

  /** Connected and logged in. */
  /** The server_encoding of the monitor's database (ParameterStatus), while a session is open: the encoding its names are converted from. */
  get serverEncoding(): string | undefined {
    return this.up ? this.conn!.parameters.get("server_encoding") : undefined;
  }

  get up(): boolean {
    return this.conn !== undefined && !this.conn.closed && !this.closed;
  }

  /** Logging in: its backend may be the process asking to be classified. */
  get opening(): boolean {
    return this.connecting !== undefined && !this.closed;
  }

  /** The pid the server sees as the client of the monitor's connections (SO_PEERCRED): this process. */
  get clientPid(): number {
    return process.pid;
  }

  /**
   * Does `pid` hold the server end of one of this monitor's connections, as the socket `fd`? The
   * kernel's SO_PEERCRED of that socket names the process that connected: only this one's
   * monitor connects from here. Asked only while a connection is open or was in the last few
   * seconds (a backend outlives its connection briefly).
   */
  isOwnBackend(pid: number, fd: number): boolean {
    if (!this.opening && !this.up && Date.now() - this.lastOpenAt > 10_000) return false;
    try {
      return socketPeerPid(pid, fd) === process.pid;
    } catch {
      return false;
    }
  }

  private alarm(why: string): MonitorAnswer {
    this.alarms++;
    this.opts.onAlarm?.(why);
    return { kind: "alarm", why };
  }

  /** Opens a connection (if not open and the backoff allows); resolves with it, or undefined. */
  private connect(): Promise<PgWireConnection | undefined> {
    if (this.up) return Promise.resolve(this.conn);
    if (this.closed || Date.now() < this.nextAttempt) return Promise.resolve(undefined);
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private fail(why: string, alarm: boolean): undefined {
    this.failures++;
    this.nextAttempt = Date.now() + Math.min(5000, 100 * 2 ** Math.min(this.failures - 1, 6));
    if (alarm) this.alarm(`the monitoring session cannot be opened: ${why}; answers are "unknown" (most restrictive) until it is`);
    return undefined;
  }

  private async open(): Promise<PgWireConnection | undefined> {
    const pm = this.opts.postmasterPid;
    const listen = listenSockets(pm);
    const paths = [...listen.unixPaths];
    if (paths.length === 0) return this.fail(`the postmaster (pid ${pm}) listens on no Unix socket (unix_socket_directories)`, this.failures === 0);
    // A socket in the directory the server's user chose first; any other the postmaster holds otherwise.
    const path = paths.find((p) => /\/\.s\.PGSQL\.\d+$/.test(p)) ?? paths[0]!;
    let fd: number;
    try {
      fd = connectUnixStream(path, this.opts.user);
    } catch (e) {
      // Not listening yet, or the backlog is full: not an alarm on its own.
      return this.fail(`connect to ${path}: ${(e as Error).message}`, this.failures >= 5);
    }
    try {
      const peer = socketPeerCredentials(fd).pid;
      if (peer !== pm) {
        closeFd(fd);
        return this.fail(`${path} is served by pid ${peer}, not by the postmaster (pid ${pm})`, true);
      }
    } catch (e) {
      closeFd(fd);
      return this.fail(`SO_PEERCRED of ${path}: ${(e as Error).message}`, true);
    }
    this.sessions++;
    let conn: PgWireConnection;
    try {
      conn = await PgWireConnection.open(fd, {
        user: this.role, database: this.database, params: STARTUP_PARAMS, timeoutMs: this.opts.connectTimeoutMs ?? 2000 * TIME_SCALE,
      });
    } catch (e) {
      const err = e as PgWireError;
      const dbs = this.opts.databases ?? ["postgres", "template1"];
      if (err.sqlstate === "3D000" && this.dbIndex < dbs.length - 1) {
        // The database is gone (dropped or renamed): the next one, at once.
        this.dbIndex++;
        return this.open();
      }
      // 57P03: the server is starting or stopping; not an alarm.
      return this.fail(`${err.message}${err.sqlstate ? ` (SQLSTATE ${err.sqlstate})` : ""}`, err.sqlstate !== "57P03" && err.sqlstate !== "53300");
    }
    // The backend, from kernel facts: the server named its pid (BackendKeyData); it must be the
    // postmaster's child holding a socket whose client is this process.
    const named = conn.backendKeyPid;
    const client = named !== undefined && named > 0 ? clientConnection(named, listen) : undefined;
    const ok = named !== undefined && readParentAndStart(named)?.ppid === pm && client?.unix === true && this.peerIsMe(named, client.fd);
    if (!ok) {
      conn.close();
      return this.fail(`the server named backend pid ${named}, which does not hold the monitor's connection`, true);
    }
    if (this.closed) {
      conn.close();
      return undefined;
    }
    this.backendPid = named;
    this.conn = conn;
    this.lastOpenAt = Date.now();
    this.failures = 0;
    conn.onClose((why) => {
      if (this.conn !== conn) return;
      this.conn = undefined;
      this.backendPid = undefined;
      this.lastOpenAt = Date.now();
      // Closed by us (idle, shutdown) or not: a session that ends under us is an alarm.
      if (why !== "closed" && !this.closed) this.alarm(`the monitoring session ended: ${why}; reconnecting on the next question`);
    });
    return conn;
  }

  private peerIsMe(pid: number, fd: number): boolean {
    try {
      return socketPeerPid(pid, fd) === process.pid;
    } catch {
      return false;
    }
  }

  /** Resolves when the session is up, or after `ms` (false). Opens it if needed. */
  async whenUp(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    // Attempts within the wait as the backoff allows: a wait that began in a backoff (the server
    // refused while starting) still sees the session opened once the server accepts it.
    while (!this.up && !this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      const attempt = this.connect();
      const pause = this.connecting ? left : Math.min(left, Math.max(this.nextAttempt - Date.now(), 10));
      await Promise.race([attempt, new Promise<undefined>((res) => setTimeout(() => res(undefined), pause).unref())]);
    }
    return this.up;
  }

  /** The classifier's question: the server's verified row for `pid` (see the top of this file). */
  ask(pid: number, withQuery = false): Promise<MonitorAnswer> {
    if (this.closed) return Promise.resolve({ kind: "unknown", why: "the monitor is closed" });
    if (this.waiting >= 64) return Promise.resolve({ kind: "unknown", why: "too many questions waiting" });
    this.waiting++;
    const run = async (): Promise<MonitorAnswer> => {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      let conn = await this.connect();
      if (!conn) return { kind: "unknown", why: "the monitoring session is down" };
      let sets: ResultSet[];
      for (let attempt = 0; ; attempt++) {
        this.queries++;
        try {
          const timeout = this.opts.queryTimeoutMs ?? 2500 * TIME_SCALE;
          sets = this.opts.protocol === "simple"
            ? await conn.query(activityQuery(pid, withQuery), timeout)
            : await conn.execute(withQuery ? ACTIVITY_STATEMENTS.withQuery : ACTIVITY_STATEMENTS.plain, activityParams(pid), timeout);
          break;
        } catch (e) {
          const err = e as PgWireError;
          // Lost under the question (pg_terminate_backend, a crash restart: class 57 or the socket
          // closed; onClose says why): one more try on a fresh session, checked like any other.
          const lost = err.sqlstate === undefined || conn.closed || err.sqlstate.startsWith("57P");
          if (!lost) return this.alarm(`the monitor's query failed: ${err.message} (SQLSTATE ${err.sqlstate})`);
          if (attempt > 0 || this.closed) return { kind: "unknown", why: err.message };
          if (this.conn === conn) {
            // The server said it ends this session (or it ended): do not wait for the socket to close.
            this.conn = undefined;
            this.backendPid = undefined;
            this.lastOpenAt = Date.now();
            this.alarm(`the monitoring session ended: ${err.message}; reconnecting`);
          }
          conn.close();
          const fresh = await this.connect();
          if (!fresh || fresh === conn) return { kind: "unknown", why: err.message };
          conn = fresh;
        }
      }
      const a = readActivityAnswer(pid, sets);
      return a.kind === "alarm" ? this.alarm(a.why) : a;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined).finally(() => {
      if (--this.waiting === 0 && this.conn && !this.closed) {
        const c = this.conn;
        this.idleTimer = setTimeout(() => {
          if (this.waiting === 0 && this.conn === c) {
            this.conn = undefined;
            this.backendPid = undefined;
            this.lastOpenAt = Date.now();
            c.close();
          }
        }, this.opts.idleCloseMs ?? 1000);
        this.idleTimer.unref();
      }
    });
    return p.catch((e: Error) => ({ kind: "unknown", why: e.message }) as MonitorAnswer);
  }

  /** The old shape: the row, "none", or undefined for no trustworthy answer (unknown and alarm alike). */
  async activity(pid: number): Promise<ActivityRow | "none" | undefined> {
    const a = await this.ask(pid);
    return a.kind === "row" ? a.row : a.kind === "none" ? "none" : undefined;
  }

  /**
   * A backend's running statement, with its role and database, for the log only: a decision
   * never rests on them (the classifier's answer does).
   */
  async statement(pid: number): Promise<{ query?: string; role?: string; database?: string } | undefined> {
    const a = await this.ask(pid, true);
    if (a.kind !== "row") return undefined;
    return { ...(a.query ? { query: a.query } : {}), ...(a.row.role ? { role: a.row.role } : {}), ...(a.row.database ? { database: a.row.database } : {}) };
  }

  close(): void {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const c = this.conn;
    this.conn = undefined;
    this.backendPid = undefined;
    c?.close();
  }
}
