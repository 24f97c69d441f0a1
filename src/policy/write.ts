// Writes policy files: the one serialiser of policy text (postgresql.conf syntax). What it
// writes reads back through conf.ts and policy.ts to the same settings.

import { argWidth, type ArgCondition } from "./entries.js";
import { errnoName, isKnownErrno } from "../syscalls/errno.js";
import { foldName, type ConfSetting } from "./conf.js";
import { buildPolicy, type Policy } from "./policy.js";

export interface PolicySettingDraft {
  name: string;
  value: string;
  /** Comment lines written above the setting (without the leading #); null is an empty line. */
  comment?: ReadonlyArray<string | null>;
  /** Written commented out (`# name = 'value'`): an alternative the reader may switch to. */
  commentedOut?: boolean;
}

export interface PolicyDraft {
  /** Comment lines at the top of the file (without the leading #), then an empty line. */
  header?: readonly string[];
  settings: readonly PolicySettingDraft[];
  /** Comment lines after the last setting; null is an empty line. */
  footer?: ReadonlyArray<string | null>;
}

const ESCAPES: Record<string, string> = { "\\": "\\\\", "'": "''", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * A value in single quotes, with postgresql.conf's escapes: '' for a quote, \\ for a backslash,
 * \n and the like for control characters (a value never ends its line early).
 */
export function quoteValue(value: string): string {
  return `'${value.replace(/[\\'\b\f\n\r\t]/g, (c) => ESCAPES[c]!)}'`;
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

/**
 * A comment as lines: a line break inside it starts another comment line, so text from elsewhere
 * (a file name, a process's comm) can never end the comment and start a setting.
 */
const commentLines = (c: string | null): string[] => (c === null ? [""] : c.split(/\r\n|\r|\n/).map((l) => (l === "" ? "#" : `# ${l}`)));

/** A setting's name as written: a control character in it would break the line, and is refused. */
function settingName(name: string): string {
  if (/[\x00-\x1f\x7f]/.test(name)) throw new Error(`policy writer: the setting name ${JSON.stringify(name)} holds a control character`);
  return name;
}

/** The settings as written: `name = 'value'` each, after its comment lines. */
export function writePolicyText(draft: PolicyDraft): string {
  const out: string[] = [];
  for (const h of draft.header ?? []) out.push(...commentLines(h));
  if (out.length) out.push("");
  for (const s of draft.settings) {
    for (const c of s.comment ?? []) out.push(...commentLines(c));
    out.push(`${s.commentedOut ? "# " : ""}${settingName(s.name)} = ${quoteValue(s.value)}`);
  }
  for (const c of draft.footer ?? []) out.push(...commentLines(c));
  return out.join("\n") + "\n";
}

/**
 * A draft built in file order: comment lines and empty lines gather above the next setting
 * (those after the last one are the footer).
 */
export class PolicyDraftBuilder {
  private readonly settings: PolicySettingDraft[] = [];
  private pending: Array<string | null> = [];

  /** Comment lines (without the leading #; "" is a bare #). */
  comment(...lines: string[]): this {
    this.pending.push(...lines);
    return this;
  }

  /** An empty line. */
  blank(): this {
    this.pending.push(null);
    return this;
  }

  set(name: string, value: string, opts: { commentedOut?: boolean } = {}): this {
    this.settings.push({ name, value, ...(this.pending.length ? { comment: this.pending } : {}), ...(opts.commentedOut ? { commentedOut: true } : {}) });
    this.pending = [];
    return this;
  }

  draft(header?: readonly string[]): PolicyDraft {
    return { ...(header ? { header } : {}), settings: [...this.settings], ...(this.pending.length ? { footer: [...this.pending] } : {}) };
  }
}

/** The settings a draft sets, as reading its text gives them (a commented-out one sets nothing). */
export function draftSettings(draft: PolicyDraft, file = "<draft>"): ConfSetting[] {
  return draft.settings
    .filter((s) => !s.commentedOut)
    .map((s, i) => {
      const loc = { file, line: i + 1, column: 1 };
      return { name: foldName(s.name), rawName: s.name, value: s.value, loc, valueLoc: loc };
    });
}

/** The policy a draft says, built from its settings as data, without writing them. */
export function draftPolicy(draft: PolicyDraft, file = "<draft>"): Policy {
  return buildPolicy(draftSettings(draft, file), [file]);
}
