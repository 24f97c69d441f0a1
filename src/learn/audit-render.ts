// audit2allow's output: the list as get_syscalls.sh printed it, a policy snippet, and counts. Pure.

import { psqlTable, type Cell } from "../render/format.js";
import { errnoName } from "../syscalls/errno.js";
import { PolicyDraftBuilder, writePolicyText, type PolicyDraft } from "../policy/write.js";
import { ARCHES } from "../syscalls/index.js";
import type { AuditReport, ProcessCount } from "./audit-analyze.js";

// ---------------------------------------------------------------------------------------------
// Output


/** The allow list as get_syscalls.sh printed it: names joined by commas, one line. */
export function formatList(names: readonly string[]): string {
  return names.join(",") + "\n";
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function processSummary(rows: readonly ProcessCount[], limit = 5): string {
  const shown = rows.slice(0, limit).map((p) => `${p.comm} (${p.exe}): ${plural(p.records, "record")}, ${plural(p.pids, "pid")}`);
  if (rows.length > limit) shown.push(`and ${rows.length - limit} more`);
  return shown.join("; ");
}

/** A policy snippet: a comment header, then one global_syscall_allow per arch (all but the first commented out). */
export function auditPolicyDraft(report: AuditReport): PolicyDraft {
  const c = report.counts;
  const d = new PolicyDraftBuilder();
  d.comment(
    "pg_seccomp audit2allow: the syscalls that SECCOMP audit records name",
    `source: ${report.source}`,
    `records: ${c.seccompRecords} SECCOMP; kept ${c.kept} (${report.processes}${report.arch ? `, ${report.arch}` : ""}); ` +
      `filtered out ${c.filteredOut}; malformed lines ${c.malformedLines}; other audit records ${c.otherRecords}`,
  );
  if (report.timeRange) d.comment(`time: ${report.timeRange.first} .. ${report.timeRange.last}`);
  if (report.processesSeen.length) d.comment(`processes: ${processSummary(report.processesSeen)}`);
  const actions = Object.entries(report.actions).map(([a, n]) => `${a} ${n}`).join(", ");
  if (actions) d.comment(`actions: ${actions}`);
  if (report.notListed.length) {
    d.comment(`not listed: ${report.notListed.map((n) => `${n.arch} ${n.syscall} (${plural(n.records, "record")})`).join(", ")}`);
  }
  const arches = ARCHES.filter((a) => report.allow[a]?.length);
  if (arches.length === 0) return d.comment("no record names a syscall of pg_seccomp's tables").set("global_syscall_allow", "").draft();
  if (arches.length > 1) {
    d.comment("records of several arches: a policy has one global_syscall_allow; keep the line of the policy's arch");
  }
  arches.forEach((arch, i) => {
    const names = report.allow[arch]!;
    const records = report.syscalls.filter((s) => s.arch === arch).reduce((n, s) => n + s.records, 0);
    d.comment(`${arch}: ${plural(names.length, "syscall")} in ${plural(records, "record")}`);
    const denied = report.denied[arch];
    if (denied?.length) d.comment(`denied when recorded (review before allowing): ${denied.join(", ")}`);
    d.set("global_syscall_allow", names.join(", "), { commentedOut: i > 0 });
  });
  return d.draft();
}

/** The policy snippet as text (postgresql.conf syntax). */
export function formatPolicy(report: AuditReport): string {
  return writePolicyText(auditPolicyDraft(report));
}

/** --stats: the counts, then records per syscall and per process, as psql prints tables. */
export function formatStats(report: AuditReport): string {
  const c = report.counts;
  const summary: Array<Record<string, Cell>> = [
    { item: "lines read", count: c.lines },
    { item: "SECCOMP records", count: c.seccompRecords },
    { item: `kept (${report.processes}${report.arch ? `, ${report.arch}` : ""})`, count: c.kept },
    { item: "filtered out: other processes", count: c.filteredOutByProcess },
    { item: "filtered out: other arches", count: c.filteredOutByArch },
    { item: "skipped: malformed lines", count: c.malformedLines },
    { item: "ignored: other audit records", count: c.otherRecords },
    { item: "ignored: other lines", count: c.otherLines },
    { item: "kept, not listable: unknown syscall", count: c.unknownSyscallRecords },
    { item: "kept, not listable: i386/x32/other arch", count: c.foreignAbiRecords },
  ];
  const syscalls = report.syscalls.map((s) => ({
    syscall: s.syscall,
    syscallnum: s.syscallnum,
    arch: s.arch,
    records: s.records,
    pids: s.pids,
    actions: Object.entries(s.actions).map(([a, n]) => (Object.keys(s.actions).length === 1 ? describeRecordedAction(a) : `${describeRecordedAction(a)} ${n}`)).join(", "),
  }));
  const processes = report.processesSeen.map((p) => ({ comm: p.comm, exe: p.exe, records: p.records, pids: p.pids, syscalls: p.syscalls }));
  const parts = [
    `${report.source}${report.timeRange ? `: ${report.timeRange.first} .. ${report.timeRange.last}` : ""}\n`,
    psqlTable(["item", "count"], summary),
    "\nPer syscall\n",
    psqlTable(["syscall", "syscallnum", "arch", "records", "pids", "actions"], syscalls),
    "\nPer process\n",
    psqlTable(["comm", "exe", "records", "pids", "syscalls"], processes),
  ];
  if (report.otherProcesses.length) {
    parts.push("\nFiltered out (other processes)\n", psqlTable(["comm", "exe", "records", "pids", "syscalls"], report.otherProcesses.map((p) => ({ ...p }))));
  }
  return parts.join("");
}


/** errno names for ERRNO(n) actions, for callers that print them. */
export function describeRecordedAction(action: string): string {
  const m = /^ERRNO\((\d+)\)$/.exec(action);
  return m ? `ERRNO(${m[1]} ${errnoName(Number(m[1]))})` : action;
}
