// The launcher's classifier (main thread): answers the supervisor's questions about children of
// the postmaster from kernel facts and the server's own structured view (src/classify/classify.ts's rules),
// and remembers what it pinned, for set_client_filter.

import type { ContextSpec } from "../policy/decision.js";
import { classifyChild } from "../classify/classify.js";
import type { MonitorConnection } from "./monitor.js";
import { clientConnection, listenSockets, type ListenSockets } from "../host/sockets.js";
import { bootTicksNow, readParentAndStart, readTitle } from "../host/proc.js";
import type { Classification } from "./supervisor-core.js";
import type { BackendIdentityReader } from "./backend-identity.js";
import { nameDecoder } from "../host/backend-identity.js";

export class ClassificationService {
  private readonly pins = new Map<number, { start: string; ctx: ContextSpec }>();
  /** Background workers answered provisionally (classify.ts): pid → start, asked about again by revisit. */
  private readonly provisional = new Map<number, string>();
  private listen: ListenSockets | undefined;
  private notes = { second: 0, count: 0 };
  /** Pins changed since pinnedEntries() was last called. */
  changed = false;
  /**
   * When the server was first seen ready (clock ticks since boot, /proc/PID/stat's unit): a
   * child forked at or after it is never classified by its title. Latched, never reset.
   */
  private readyAt: number | undefined;

  constructor(
    private readonly postmasterPid: number,
    private readonly monitor: MonitorConnection | undefined,
    private readonly say: (line: string) => void,
    /** False when the policy does not tell client processes apart (src/compile/compose.ts, clientsNeedServerRow). */
    private readonly clientsNeedRow = true,
    /** Reads who a client process logged in as from its own memory (the row cross-check); undefined: the row alone decides. */
    private readonly identity?: BackendIdentityReader,
  ) {}

  /** The server accepts connections (the monitor answered, or postmaster.pid said so): titles stop being a source for processes forked from now on. */
  markReady(): void {
    if (this.readyAt !== undefined) return;
    try {
      this.readyAt = bootTicksNow();
    } catch {
      this.readyAt = 0; // cannot be told: no title is a source
    }
  }

  /**
   * The server says it is starting again (a crash restart: every child is re-forked and the
   * monitor is gone until it accepts connections). postmaster.pid is the server's word, so a
   * process of its user could say this falsely; what that reopens is bounded: processes already
   * pinned keep their context in the kernel, and code in a backend runs only after the exec gate
   * classified it (docs/design.md, "Classification").
   */
  markStarting(): void {
    this.readyAt = undefined;
  }

  get ready(): boolean {
    return this.readyAt !== undefined;
  }

  async classify(pid: number, start: string, entersCode = false): Promise<Classification> {
    const gone: Classification = { ctx: { context: "unclassified" }, pin: false, note: "process gone" };
    const st = readParentAndStart(pid);
    if (!st || st.start !== start || st.ppid !== this.postmasterPid) return gone;
    if (!this.listen || (this.listen.unixPaths.size === 0 && this.listen.tcpPorts.size === 0)) this.listen = listenSockets(this.postmasterPid);
    const client = clientConnection(pid, this.listen);
    const hasClient = client !== undefined;
    // A client reached the server: from now on every process may be running a client's code.
    if (hasClient) this.markReady();
    // The monitoring session's own backend, by the kernel's word (its client socket's peer is this
    // process: monitor.ts, isOwnBackend), never by a pid the server reports: answered without a
    // query (a query would wait for the very session that is logging in or busy asking).
    if (client?.unix && this.monitor?.isOwnBackend(pid, client.fd)) {
      const ctx: ContextSpec = { context: "session", role: this.monitor.role, database: this.monitor.database };
      this.pins.set(pid, { start, ctx });
      this.changed = true;
      return { ctx, pin: true };
    }
    if (hasClient && !this.clientsNeedRow) {
      // Session or walsender, and the policy treats them alike: the kernel's word is enough.
      const ctx: ContextSpec = { context: "session" };
      this.pins.set(pid, { start, ctx });
      this.changed = true;
      return { ctx, pin: true };
    }
    // A server that accepts connections answers within the supervisor's wait; one that is still
    // starting does not, and then the kernel facts and the title decide (src/classify/classify.ts).
    // (The monitor's own backend returned above: it never waits here.) Waiting or not never
    // changes which facts decide.
    // Without a client connection the row's type decides the kind: checked against the process's own.
    // With no row (none for the pid, or no answer from the monitor) the process's own type
    // decides, never its title, before the server is ready as after (classify.ts).
    const ownBackendType = !hasClient && this.identity ? (this.identity.backendType(pid) ?? "unreadable") : undefined;
    // A background worker is told apart (a logical replication launcher, an extension's worker)
    // only by its row: worth the wait a client gets.
    if (this.monitor && !this.monitor.up) await this.monitor.whenUp(hasClient || ownBackendType === "background worker" ? 700 : 50);
    if (this.monitor?.up) this.markReady();
    const activity = this.monitor ? await this.monitor.activity(pid) : undefined;
    if (this.monitor?.up) this.markReady();
    // At or after the tick the server was seen ready (the same tick counts as after: fail closed).
    const forkedAfterReady = this.readyAt !== undefined && !(Number(start) < this.readyAt);
    // The row is shared memory any server process can write; who the process logged in as is in
    // its own (src/host/backend-identity.ts). Read while the call that asked is held.
    const startupNames = hasClient && this.identity && activity && activity !== "none" ? (this.identity.read(pid, nameDecoder(this.monitor?.serverEncoding)) ?? "unreadable") : undefined;
    const c = classifyChild({ entersCode, activity, clientConnection: hasClient, title: readTitle(pid), forkedAfterReady, ...(startupNames ? { startupNames } : {}), ...(ownBackendType ? { ownBackendType } : {}) });
    // The answer is about this process only if the pid still names it.
    if (readParentAndStart(pid)?.start !== start) return gone;
    if (c.provisional) {
      if (this.provisional.size > 4096) this.provisional.clear();
      this.provisional.set(pid, start);
    } else this.provisional.delete(pid);
    if (c.pin) {
      if (this.pins.size > 65_536) this.pins.clear();
      this.pins.set(pid, { start, ctx: c.ctx });
      this.changed = true;
    }
    if (c.note && (c.pin || c.note.startsWith("alarm"))) this.note(`pg_seccomp: pid ${pid} gets the most restrictive context: ${c.note}`);
    return c;
  }

  /**
   * Is there a provisional answer (a background worker before its row was known) to ask about
   * again, now that the monitor can answer?
   */
  get revisitDue(): boolean {
    return this.provisional.size > 0 && this.monitor?.up === true;
  }

  /**
   * Classifies again each process answered provisionally, and gives `answer` every classification
   * that pins now (its row is there). A process pinned meanwhile (a call that brought code pins
   * it at once) or gone is dropped. Its facts are read as for any call: the same trust.
   */
  async revisit(answer: (pid: number, start: string, c: Classification) => void): Promise<void> {
    for (const [pid, start] of [...this.provisional]) {
      if (this.pins.get(pid)?.start === start || readParentAndStart(pid)?.start !== start) {
        this.provisional.delete(pid);
        continue;
      }
      const c = await this.classify(pid, start);
      if (c.pin) answer(pid, start, c);
    }
  }

  /** The pinned context of a live process, if any. */
  pinned(pid: number): ContextSpec | undefined {
    const pin = this.pins.get(pid);
    return pin && readParentAndStart(pid)?.start === pin.start ? pin.ctx : undefined;
  }

  /** Live pins (for the run state that `status` reads). */
  pinnedEntries(): Array<{ pid: number; start: string; ctx: ContextSpec }> {
    this.changed = false;
    const out: Array<{ pid: number; start: string; ctx: ContextSpec }> = [];
    for (const [pid, pin] of this.pins) {
      if (readParentAndStart(pid)?.start === pin.start) out.push({ pid, start: pin.start, ctx: pin.ctx });
      else this.pins.delete(pid);
    }
    return out;
  }

  private note(line: string): void {
    const second = Math.floor(Date.now() / 1000);
    if (this.notes.second !== second) this.notes = { second, count: 0 };
    if (++this.notes.count <= 5) this.say(line);
  }
}
