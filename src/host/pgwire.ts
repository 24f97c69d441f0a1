// A small PostgreSQL wire-protocol client (protocol 3.0) over a Unix socket, for the launcher's
// monitoring session (src/supervisor/monitor.ts): no psql is needed beside postgres, and nothing
// between the launcher and the server parses text meant for people.
//
// What it does: the startup message; trust or peer authentication (the only kinds a Unix socket
// needs for the server's own user; anything else is refused with the method's name: the launcher
// holds no passwords); the simple query protocol, one query at a time. What the server sends is
// hostile input to a root process, so every message's length is bounded before it is buffered
// (a larger one ends the connection), every result is bounded in rows and fields, and every wait
// has a deadline, after which the connection is destroyed: nothing here waits on the server
// without one.

import { Socket } from "node:net";

/** The largest message accepted (a row of pg_stat_activity with a 1 MB query text fits). */
export const MAX_MESSAGE = 2 * 1024 * 1024;
const MAX_ROWS = 1000;
const MAX_FIELDS = 64;
const PROTOCOL_3_0 = 196608;

export class PgWireError extends Error {
  override name = "PgWireError";
  constructor(message: string, readonly sqlstate?: string) {
    super(message);
  }
}

export interface ResultSet {
  columns: string[];
  /** Text values; null for SQL NULL. */
  rows: Array<Array<string | null>>;
  command: string;
}

export interface StartupOptions {
  user: string;
  database: string;
  /** Settings sent in the startup message (they override ALTER ROLE/DATABASE SET). */
  params?: Record<string, string>;
  /** Deadline for the whole startup, ms. */
  timeoutMs: number;
}

const AUTH_NAMES: Record<number, string> = {
  2: "Kerberos V5", 3: "password", 5: "md5", 7: "GSSAPI", 8: "GSSAPI", 9: "SSPI", 10: "SCRAM (SASL)", 11: "SCRAM (SASL)", 12: "SCRAM (SASL)",
};

/** One message: its type byte and body. */
interface Message {
  type: string;
  body: Buffer;
}

/** Fields of an ErrorResponse or NoticeResponse: S (severity), C (SQLSTATE), M (message)... */
export function parseErrorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const code = String.fromCharCode(body[i]!);
    const end = body.indexOf(0, i + 1);
    if (end < 0) break;
    out[code] = body.toString("utf8", i + 1, end);
    i = end + 1;
  }
  return out;
}

/** The startup message: length, protocol 3.0, then name\0value\0 pairs and a final \0. */
export function startupMessage(params: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (k.includes("\0") || v.includes("\0")) throw new PgWireError(`startup parameter ${k} holds a NUL byte`);
    parts.push(Buffer.from(`${k}\0${v}\0`, "utf8"));
  }
  parts.push(Buffer.from([0]));
  const payload = Buffer.concat(parts);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + payload.length, 0);
  head.writeInt32BE(PROTOCOL_3_0, 4);
  return Buffer.concat([head, payload]);
}

/** A simple Query message. */
export function queryMessage(sql: string): Buffer {
  if (sql.includes("\0")) throw new PgWireError("a query holds a NUL byte");
  const text = Buffer.from(sql + "\0", "utf8");
  const head = Buffer.alloc(5);
  head.write("Q", 0, "latin1");
  head.writeInt32BE(4 + text.length, 1);
  return Buffer.concat([head, text]);
}

/** A frontend message: type byte, length, body. */
function frontendMessage(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

function cString(s: string, what: string): Buffer {
  if (s.includes("\0")) throw new PgWireError(`${what} holds a NUL byte`);
  return Buffer.from(s + "\0", "utf8");
}

/** A named statement of the extended query protocol: parsed once per connection, then bound and executed. */
export interface PreparedStatement {
  readonly name: string;
  readonly sql: string;
  /** Parameter type OIDs (23: int4). */
  readonly paramTypes: readonly number[];
}

/** Parse: the statement's name, its text, and its parameter types. */
export function parseMessage(st: PreparedStatement): Buffer {
  const types = Buffer.alloc(2 + 4 * st.paramTypes.length);
  types.writeInt16BE(st.paramTypes.length, 0);
  st.paramTypes.forEach((t, i) => types.writeInt32BE(t, 2 + 4 * i));
  return frontendMessage("P", Buffer.concat([cString(st.name, "a statement name"), cString(st.sql, "a query"), types]));
}

/** Bind of the unnamed portal to `name`, parameters in text format, results in text format; then Execute and Sync. */
export function bindExecuteSync(name: string, params: ReadonlyArray<string | null>): Buffer {
  const parts: Buffer[] = [Buffer.from([0]), cString(name, "a statement name"), Buffer.from([0, 0])]; // portal "", no parameter format codes (text)
  const n = Buffer.alloc(2);
  n.writeInt16BE(params.length, 0);
  parts.push(n);
  for (const v of params) {
    const len = Buffer.alloc(4);
    if (v === null) {
      len.writeInt32BE(-1, 0);
      parts.push(len);
    } else {
      const b = Buffer.from(v, "utf8");
      len.writeInt32BE(b.length, 0);
      parts.push(len, b);
    }
  }
  parts.push(Buffer.from([0, 0])); // no result format codes: text
  const execute = frontendMessage("E", Buffer.from([0, 0, 0, 0, 0])); // portal "", no row limit
  return Buffer.concat([frontendMessage("B", Buffer.concat(parts)), execute, frontendMessage("S", Buffer.alloc(0))]);
}

/**
 * Splits a byte stream into messages. Each length is checked before its body is waited for: a
 * length under 4 or over `max` is an error, so the buffer never holds more than one bounded
 * message plus one read.
 */
export class MessageReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly max = MAX_MESSAGE) {}

  /** Adds bytes; returns the complete messages, or throws on a malformed or oversized one. */
  push(chunk: Buffer): Message[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Message[] = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readInt32BE(1);
      if (len < 4 || len > this.max) throw new PgWireError(`the server sent a message of ${len} bytes (type ${JSON.stringify(String.fromCharCode(this.buf[0]!))}; at most ${this.max} accepted)`);
      if (this.buf.length < 1 + len) break;
      out.push({ type: String.fromCharCode(this.buf[0]!), body: Buffer.from(this.buf.subarray(5, 1 + len)) });
      this.buf = this.buf.subarray(1 + len);
    }
    return out;
  }
}

/** A RowDescription's column names. */
function parseRowDescription(body: Buffer): string[] {
  const n = body.readInt16BE(0);
  if (n < 0 || n > MAX_FIELDS) throw new PgWireError(`a result of ${n} columns`);
  const names: string[] = [];
  let i = 2;
  for (let k = 0; k < n; k++) {
    const end = body.indexOf(0, i);
    if (end < 0) throw new PgWireError("a malformed RowDescription");
    names.push(body.toString("utf8", i, end));
    i = end + 1 + 18; // table oid, column number, type oid, size, modifier, format
  }
  return names;
}

/** A DataRow's values (text format). */
function parseDataRow(body: Buffer): Array<string | null> {
  const n = body.readInt16BE(0);
  if (n < 0 || n > MAX_FIELDS) throw new PgWireError(`a row of ${n} fields`);
  const values: Array<string | null> = [];
  let i = 2;
  for (let k = 0; k < n; k++) {
    if (i + 4 > body.length) throw new PgWireError("a malformed DataRow");
    const len = body.readInt32BE(i);
    i += 4;
    if (len === -1) values.push(null);
    else {
      if (len < 0 || i + len > body.length) throw new PgWireError("a malformed DataRow");
      values.push(body.toString("utf8", i, i + len));
      i += len;
    }
  }
  return values;
}

/**
 * One connection. open() performs the startup and authentication; query() runs one simple query
 * (possibly several statements) and resolves with its result sets, or rejects with the server's
 * error (its SQLSTATE kept) or with a deadline or protocol error (the connection is then closed).
 */
export class PgWireConnection {
  /** The pid the server named in BackendKeyData (its word only: callers check it with kernel facts). */
  backendKeyPid: number | undefined;
  /** ParameterStatus values the server sent (server_encoding, ...), at most 64, each bounded. */
  readonly parameters = new Map<string, string>();
  closed = false;
  private readonly reader = new MessageReader();
  private waiter: ((m: Message | Error) => void) | undefined;
  private pending: Message[] = [];
  private failure: Error | undefined;
  private readonly closeListeners: Array<(why: string) => void> = [];

  private constructor(private readonly socket: Socket) {
    socket.on("data", (d: Buffer) => {
      let msgs: Message[];
      try {
        msgs = this.reader.push(d);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      for (const m of msgs) this.deliver(m);
    });
    socket.on("error", (e) => this.fail(new PgWireError(`connection error: ${e.message}`)));
    socket.on("close", () => this.fail(new PgWireError("the server closed the connection")));
  }

  /** Wraps a connected socket descriptor (which it then owns) and logs in. */
  static async open(fd: number, opts: StartupOptions): Promise<PgWireConnection> {
    const c = new PgWireConnection(new Socket({ fd, readable: true, writable: true }));
    try {
      await c.startup(opts);
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  /** Called once when the connection ends, with why. */
  onClose(f: (why: string) => void): void {
    if (this.closed) f(this.failure?.message ?? "closed");
    else this.closeListeners.push(f);
  }

  private deliver(m: Message): void {
    if (m.type === "S") {
      // ParameterStatus: name\0value\0 (bounded by the reader's message limit; at most 64 kept).
      const z = m.body.indexOf(0);
      if (z > 0 && z <= 64 && (this.parameters.size < 64 || this.parameters.has(m.body.toString("utf8", 0, z)))) {
        const end = m.body.indexOf(0, z + 1);
        if (end > z && end - z <= 256) this.parameters.set(m.body.toString("utf8", 0, z), m.body.toString("utf8", z + 1, end));
      }
      return;
    }
    if (m.type === "N" || m.type === "A") return; // notices, notifications
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(m);
    } else if (this.pending.length < 4 * MAX_ROWS) this.pending.push(m);
    else this.fail(new PgWireError("the server sent messages nobody asked for"));
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.failure = e;
    this.closed = true;
    if (!this.closing) this.socket.destroy();
    const w = this.waiter;
    this.waiter = undefined;
    w?.(e);
    for (const f of this.closeListeners.splice(0)) f(e.message);
  }

  /** The next message before `deadline` (ms since the epoch); a late one closes the connection. */
  private next(deadline: number): Promise<Message> {
    const ready = this.pending.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closed) return Promise.reject(this.failure ?? new PgWireError("connection closed"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new PgWireError(`no answer from the server within ${Math.max(0, deadline - Date.now() + 1)} ms`)), Math.max(0, deadline - Date.now()));
      timer.unref();
      this.waiter = (m) => {
        clearTimeout(timer);
        if (m instanceof Error) reject(m);
        else resolve(m);
      };
    });
  }

  private async startup(opts: StartupOptions): Promise<void> {
    const deadline = Date.now() + opts.timeoutMs;
    this.socket.write(startupMessage({ user: opts.user, database: opts.database, ...(opts.params ?? {}) }));
    for (;;) {
      const m = await this.next(deadline);
      if (m.type === "E") {
        const f = parseErrorFields(m.body);
        throw new PgWireError(f.M ?? "the server refused the connection", f.C);
      }
      if (m.type === "R") {
        const code = m.body.readInt32BE(0);
        if (code === 0) continue; // AuthenticationOk
        throw new PgWireError(
          `the server asks for ${AUTH_NAMES[code] ?? `authentication method ${code}`} authentication; the monitoring connection uses only trust or peer over the Unix socket`,
          "28000",
        );
      }
      if (m.type === "K") {
        if (m.body.length >= 4) this.backendKeyPid = m.body.readInt32BE(0);
        continue;
      }
      if (m.type === "Z") return;
      if (m.type === "v") continue; // NegotiateProtocolVersion: 3.0 is what we speak
      throw new PgWireError(`unexpected message ${JSON.stringify(m.type)} during startup`);
    }
  }

  private busy = false;
  /** Statements parsed on this connection (by name). */
  private readonly prepared = new Set<string>();

  /** Runs one simple query; rejects on the server's error (sqlstate kept), on a deadline, or on a protocol error. */
  query(sql: string, timeoutMs: number): Promise<ResultSet[]> {
    return this.exchange(queryMessage(sql), timeoutMs, false);
  }

  /**
   * Runs a named statement with `params` through the extended protocol: Parse the first time on
   * this connection, then Bind, Execute and Sync in one write (one round trip; no planning or
   * parsing of the text again). Its one result set has no column names (no Describe is sent).
   */
  async execute(st: PreparedStatement, params: ReadonlyArray<string | null>, timeoutMs: number): Promise<ResultSet[]> {
    const parse = !this.prepared.has(st.name);
    const msg = Buffer.concat([...(parse ? [parseMessage(st)] : []), bindExecuteSync(st.name, params)]);
    const sets = await this.exchange(msg, timeoutMs, true, () => this.prepared.add(st.name));
    return sets;
  }

  private async exchange(message: Buffer, timeoutMs: number, extended: boolean, onParsed?: () => void): Promise<ResultSet[]> {
    if (this.closed) throw this.failure ?? new PgWireError("connection closed");
    if (this.busy) throw new PgWireError("a query is already running on this connection");
    this.busy = true;
    const deadline = Date.now() + timeoutMs;
    try {
      this.socket.write(message);
      const sets: ResultSet[] = [];
      let current: ResultSet | undefined;
      let error: PgWireError | undefined;
      let rows = 0;
      for (;;) {
        const m = await this.next(deadline);
        switch (m.type) {
          case "T":
            current = { columns: parseRowDescription(m.body), rows: [], command: "" };
            break;
          case "1": // ParseComplete
            if (!extended) throw this.protocol("an unexpected ParseComplete");
            onParsed?.();
            break;
          case "2": // BindComplete
          case "n": // NoData
            if (!extended) throw this.protocol(`an unexpected ${m.type === "2" ? "BindComplete" : "NoData"}`);
            break;
          case "D":
            // The extended protocol sends no RowDescription unless Describe asks for one.
            if (!current && extended) current = { columns: [], rows: [], command: "" };
            if (!current) throw this.protocol("a DataRow without a RowDescription");
            if (++rows > MAX_ROWS) throw this.protocol(`more than ${MAX_ROWS} rows`);
            current.rows.push(parseDataRow(m.body));
            break;
          case "C":
            (current ??= { columns: [], rows: [], command: "" }).command = m.body.toString("utf8", 0, Math.max(0, m.body.length - 1));
            sets.push(current);
            current = undefined;
            break;
          case "I":
            current = undefined;
            break;
          case "E": {
            const f = parseErrorFields(m.body);
            error ??= new PgWireError(f.M ?? "error", f.C);
            current = undefined;
            break;
          }
          case "Z":
            if (error) throw error;
            return sets;
          default:
            // COPY and the extended protocol's answers: never asked for.
            throw this.protocol(`unexpected message ${JSON.stringify(m.type)}`);
        }
      }
    } finally {
      this.busy = false;
    }
  }

  private protocol(what: string): PgWireError {
    const e = new PgWireError(`protocol error: ${what}`);
    this.fail(e);
    return e;
  }

  /** Sends Terminate and closes (the socket is destroyed after a second if the server keeps it open). */
  close(): void {
    if (this.closed) return;
    const s = this.socket;
    try {
      s.end(Buffer.from([0x58, 0, 0, 0, 4])); // 'X'
    } catch {
      /* gone */
    }
    this.closing = true;
    this.fail(new PgWireError("closed"));
    setTimeout(() => s.destroy(), 1000).unref();
  }

  private closing = false;
}
