// Printing an analysis: a psql-style table, or a policy fragment in postgresql.conf syntax with
// one comment per syscall naming its evidence. Pure string building.

import { psqlTable } from "../render/format.js";
import type { AnalyzeResult, Via } from "./analyze.js";

export function describeVia(v: Via): string {
  const where = `${v.binary}:${v.function}${v.kind === "vdso-fallback" ? " (vDSO fallback)" : v.kind === "kernel" ? " (issued by the kernel)" : v.kind === "wrapper-call" ? ` via ${v.callee}()` : ""} @${v.address}`;
  if (v.path && v.path.length > 1) return `${where}, reached from ${v.path.slice(0, -1).join(" -> ")}`;
  return v.reach === "call-path" ? where : `${where}, no direct call path (indirect calls)`;
}

export function renderTable(r: AnalyzeResult): string {
  const rows = r.syscalls.map((s) => ({
    syscall: s.name,
    nr: s.number,
    reach: s.reach,
    sites: s.sites,
    evidence: s.via[0] ? describeVia(s.via[0]) : "",
  }));
  let out = psqlTable(["syscall", "nr", "reach", "sites", "evidence"], rows);
  if (r.unresolved.length > 0) {
    out += `\nUnresolved sites (${r.unresolved.length}):\n`;
    out += psqlTable(
      ["binary", "function", "address", "reason"],
      r.unresolved.map((u) => ({ binary: u.binary, function: u.function, address: u.address, reason: u.reason + (u.partial ? ` (also ${u.partial.join(", ")})` : "") })),
    );
  }
  return out;
}

/** A postgresql.conf fragment: the allow list with its evidence as comments above it. */
export function renderPolicy(r: AnalyzeResult, opts: { command?: string } = {}): string {
  const L: string[] = [];
  L.push(`# Static analysis by pg_seccomp analyze (${r.arch})${opts.command ? `: ${opts.command}` : ""}`);
  L.push(`# Names are ${r.arch} syscalls: check this file with pg_seccomp check --arch ${r.arch}.`);
  L.push(`# Files: ${r.binaries.map((b) => b.name).join(", ")}`);
  for (const m of r.missing) L.push(`# NOT FOUND: ${m.name} (needed by ${m.neededBy}); its syscalls are missing`);
  if (r.unresolved.length > 0) L.push(`# ${r.unresolved.length} site(s) with an unresolved number (see analyze --format json): the list may be incomplete`);
  L.push(`# ${r.syscalls.length} syscalls; ${r.stats.callPathSyscalls} with a direct call path from ${r.binaries[0]?.name ?? "the executable"}.`);
  L.push("#");
  for (const s of r.syscalls) {
    L.push(`# ${s.name} (${s.number}): ${s.via[0] ? describeVia(s.via[0]) : ""}${s.sites > 1 ? ` [+${s.sites - 1} more site(s)]` : ""}`);
  }
  L.push(`global_syscall_allow = '${r.syscalls.map((s) => s.name).join(", ")}'`);
  return L.join("\n") + "\n";
}
