// Writes policy files: the one serialiser of policy text (postgresql.conf syntax). What it
// writes reads back through conf.ts and policy.ts to the same settings.

import { argWidth, type ArgCondition } from "./entries.js";
import { errnoName, isKnownErrno } from "../syscalls/errno.js";

export interface PolicySettingDraft {
  name: string;
  value: string;
  /** Comment lines written above the setting (without the leading #). */
  comment?: string[];
}

export interface PolicyDraft {
  /** Comment lines at the top of the file (without the leading #). */
  header?: string[];
  settings: PolicySettingDraft[];
}

/** A value in single quotes: '' for a quote, \\ for a backslash (postgresql.conf's escapes). */
export function quoteValue(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

const hex = (v: bigint) => (v > 9n ? "0x" + v.toString(16) : v.toString());
const OP: Record<ArgCondition["op"], string> = { eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=", masked_eq: "==", masked_ne: "!=" };

/** One condition as the policy language writes it, with the width spelled out where it is not the syscall's own. */
export function conditionText(syscall: string, c: ArgCondition): string {
  const width = c.width === argWidth(syscall, c.arg) ? "" : `:${c.width}`;
  const arg = `arg${c.arg}${width}`;
  return c.mask !== undefined ? `${arg} & ${hex(c.mask)} ${OP[c.op]} ${hex(c.value)}` : `${arg} ${OP[c.op]} ${hex(c.value)}`;
}

/** A list entry: `name`, `name(conds)`, `name:ERRNO`, `name(conds):ERRNO`. */
export function entryText(syscall: string, conditions: readonly ArgCondition[] = [], errno?: number): string {
  const conds = conditions.length ? `(${conditions.map((c) => conditionText(syscall, c)).join(", ")})` : "";
  return `${syscall}${conds}${errno !== undefined ? `:${isKnownErrno(errno) ? errnoName(errno) : errno}` : ""}`;
}

export function writePolicyText(draft: PolicyDraft): string {
  const out: string[] = [];
  for (const h of draft.header ?? []) out.push(h === "" ? "#" : `# ${h}`);
  if (out.length) out.push("");
  for (const s of draft.settings) {
    for (const c of s.comment ?? []) out.push(c === "" ? "#" : `# ${c}`);
    out.push(`${s.name} = ${quoteValue(s.value)}`);
  }
  return out.join("\n") + "\n";
}
