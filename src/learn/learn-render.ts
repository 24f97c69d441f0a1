// `pg_seccomp learn`: the output policy, in seed-compatible postgresql.conf syntax, from what was
// learned and the base (learn-plan.ts decides what it holds; this writes it with its comments as
// a policy draft). Pure.

import { formatAction, sameAction, type ActionKind } from "../policy/actions.js";
import { DEFAULT_UNKNOWN_ACTION, type Policy } from "../policy/policy.js";
import { errnoName } from "../syscalls/errno.js";
import { PolicyDraftBuilder, writePolicyText, type PolicyDraft } from "../policy/write.js";
import { hardeningValue } from "../policy/harden.js";
import { composeProfile, mapNames } from "../analyze/profile.js";
import { parseContextKey, type LearnedCall } from "./learn-record.js";
import {
  overlayLists, planOverlays, RESTRICTIVE, viewBase, viewLearned, type BaseView, type LearnedView, type Overlay, type RenderInput,
} from "./learn-plan.js";

export type { RenderInput } from "./learn-plan.js";

// ---------------------------------------------------------------------------------------------
// 3. The output policy

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** A learned call's comment line (without the #): `pg_seccomp learn --merge` reads these. */
function seenLine(name: string, c: LearnedCall, suffix = ""): string {
  return `  ${name}: first seen ${c.first.time} in ${c.first.context} (pid ${c.first.pid}: ${c.first.process}), ${plural(c.count, "call")}${suffix}`;
}

/** A list setting's value: the entries, each once, in order. */
function listValue(entries: readonly string[]): string {
  return [...new Set(entries)].join(", ");
}

/** The header's comment lines (without the #): where the file came from, and what it allows and why. */
function headerLines(input: RenderInput): string[] {
  const { arch } = input;
  const perRole = input.perRole ?? false;
  const now = new Date().toISOString();
  const baseName = input.base ? input.baseLabel : "none";
  return [
    "pg_seccomp learned policy",
    "",
    `written:   ${now} by pg_seccomp learn`,
    `since:     ${input.since && input.since < input.roundStart ? input.since : input.roundStart} (the first round's start)`,
    `round:     ${input.roundStart} to ${input.roundEnd}`,
    `rounds:    ${input.rounds}`,
    ...(input.merged ? [`merged:    ${input.merged}`] : []),
    `server:    ${input.server}`,
    `arch:      ${arch} (syscall names are ${arch}'s: check this file with pg_seccomp check --arch ${arch})`,
    `workload:  ${input.workload ? input.workload.replace(/\s*\n\s*/g, "; ") : "(none: the server ran until stopped)"}`,
    `base:      ${baseName}`,
    `per-role:  ${perRole ? "yes" : "no"}`,
    ...(input.coverage ? ["", ...input.coverage] : []),
    "",
    "How it was learned: the server ran under the base with every action other than allow",
    "turned into log. What the base allows stayed allowed, decided in the kernel, and was never",
    "reported; every other call ran as it would without a filter and was reported with the",
    "context of the process that made it (postmaster, a session of a role in a database, a",
    "backend type, or a process not yet classified).",
    "",
    "What this file allows (composed as the bundled profiles are, src/analyze/profile.ts):",
    "- global_syscall_allow: every syscall learned in any context, the floor (profiles/floor.conf)",
    "  and what the base allows; each with its evidence (seen [context], floor [reason], static).",
    "- global_syscall_log: what pg_seccomp analyze finds reachable in the server's files and no",
    "  context used: it runs, and each call is written to the violation log (never denied).",
    "- every context gets the global lists: a call learned in one context is allowed in all, and a",
    "  process kind that never ran while learning gets everything. A context is narrowed below the",
    "  global lists only where the base's own lists do it, or for the names given with",
    "  --deny-per-context (denied in each context that ran and did not use them).",
    "- the base's database overlays are kept, minus restrictions of what sessions used. Argument",
    "  conditions that the base sets in its overlays (not its global lists) are not carried over.",
    "",
    "Lines '#   name: first seen ...' record what was learned; pg_seccomp learn --merge reads them.",
  ];
}

/** A context key as the evidence tags name it, and what it means. */
function keyLegend(key: string): string {
  if (key === "unclassified") return "learned in processes not yet classified (between fork and setting their title)";
  const { context, role, database } = parseContextKey(key);
  if (context === "session") return `learned in client backends${role ? ` of role ${role}` : ""}${database ? ` in database ${database}` : ""}`;
  return `learned in ${PROCESS_LABEL[context] ?? context}`;
}

const PROCESS_LABEL: Record<string, string> = { postmaster: "the postmaster", parallel_worker: "parallel workers" };

/** The tag of the base's allowed calls in the evidence (floor [base]). */
const BASE_TAG = "base";

/**
 * The global section: composeProfile's composition (the one the bundled profiles are made by) of
 * seen ∪ floor ∪ static, with the base's own entries added: its allow list (never reported while
 * learning, so kept), and its deny lists minus what the server used.
 */
function globalSection(d: PolicyDraftBuilder, input: RenderInput, lv: LearnedView, bv: BaseView): Set<string> {
  const { arch } = input;
  const { usedIn, unknownNumbers } = lv;
  const seen = new Map<string, string[]>();
  for (const [name, keys] of usedIn) if (lv.known(name)) seen.set(name, [...new Set(keys)].sort());
  const legend = new Map([...new Set([...seen.values()].flat())].sort().map((k) => [k, keyLegend(k)] as const));
  // The floor is written in x86_64 names: carried to the arch (aarch64 lacks stat, pipe, ...).
  const floorTags = new Map<string, string>();
  for (const [to, froms] of mapNames(input.floor?.allow ?? [], arch).mapped) floorTags.set(to, input.floor?.tagOf?.get(froms[0]!) ?? "floor");
  const reasons = new Map<string, string>(input.floor?.reasons ?? []);
  if (!input.floor?.tagOf) reasons.set("floor", "profiles/floor.conf");
  const baseGlobal = bv.base?.global.entries ?? [];
  for (const e of baseGlobal) {
    if (e.action.kind !== "allow" || e.kind !== "syscall" || e.conditions.length > 0 || !lv.known(e.name)) continue;
    if (!seen.has(e.name) && !floorTags.has(e.name)) floorTags.set(e.name, BASE_TAG);
  }
  if ([...floorTags.values()].includes(BASE_TAG)) reasons.set(BASE_TAG, `the learning base (${input.baseLabel}) allows them in the kernel: never reported while learning, so allowed everywhere`);
  const floorKill = (input.floor?.kill ?? []).join(", ");
  const harden = bv.base?.hardening ? hardeningValue(bv.base.hardening.presets) : (input.floor?.harden ?? "all");
  const composed = composeProfile({
    arch, learned: seen, learnedLegend: legend, floor: floorTags, floorReasons: reasons,
    ...(input.analysis ? { analysis: input.analysis } : {}), staticOnly: "log", kill: floorKill, harden, header: [],
  });
  const allowed = new Set(composed.allow);
  // Logged: the static-only calls and the reachable members of the killed groups (a name beats
  // its group: without it in the log list, the kill list would kill a reachable call).
  const logged = new Set([...composed.staticOnly, ...composed.groupLogged]);
  // The base's entries the composition does not carry: conditional allows and groups, its own deny lists.
  const extra: Record<ActionKind, string[]> = { allow: [], log: [], error: [], terminate: [], trap: [], kill: [] };
  const removed: Record<ActionKind, string[]> = { allow: [], log: [], error: [], terminate: [], trap: [], kill: [] };
  const composedKill = new Set(input.floor?.kill ?? []);
  for (const e of baseGlobal) {
    const a = e.action.kind;
    if (a === "allow") {
      if (e.kind === "syscall" && e.conditions.length === 0 && allowed.has(e.name)) continue;
      if (e.kind === "syscall" && allowed.has(e.name)) continue; // allowed unconditionally: the condition adds nothing
      extra.allow.push(e.text);
      continue;
    }
    if (e.kind === "syscall" && allowed.has(e.name)) {
      removed[a].push(`${e.text} (used in ${lv.whereUsed(e.name) || "the base's allow list"})`);
      continue;
    }
    if (a === "kill" && composedKill.has(e.text)) continue;
    if (a === "log" && e.kind === "syscall" && logged.has(e.name) && e.conditions.length === 0) continue;
    extra[a].push(e.text);
    // The base names it: its list decides, not the static evidence.
    if (a !== "log" && e.kind === "syscall" && e.conditions.length === 0) logged.delete(e.name);
  }
  const errno = bv.base ? errnoName(bv.errorErrno) : "EPERM";
  for (const s of composed.draft.settings) {
    const comment = [...(s.comment ?? [])];
    let value = s.value;
    if (s.name === "syscall_error_errno") value = errno;
    else if (s.name === "global_syscall_default" && bv.base) value = formatAction(bv.globalDefault, bv.errorErrno);
    else if (s.name === "global_syscall_allow") value = listValue([...value.split(", ").filter(Boolean), ...extra.allow]);
    else if (s.name === "global_syscall_log") value = listValue([...value.split(", ").filter((n) => n && logged.has(n)), ...extra.log]);
    else if (s.name === "global_syscall_kill") value = listValue([...value.split(", ").filter(Boolean), ...extra.kill]);
    if (s.name === "global_syscall_allow" && unknownNumbers.length > 0) {
      comment.push(
        `${unknownNumbers.join(", ")}: learned, but not in pg_seccomp's ${arch} table (a kernel newer than the table), so not listable;`,
        `  such numbers get syscall_unknown_action (ENOSYS by default: glibc falls back to an older call)`,
      );
    }
    if (s.name === "global_syscall_kill") {
      if (!composed.draft.settings.some((x) => x.name === "global_syscall_log") && extra.log.length > 0) d.comment("the base's own log list:").set("global_syscall_log", listValue(extra.log)).blank();
      for (const a of ["log", "error", "trap"] as const) {
        if (removed[a].length > 0) d.comment(`removed from the base's ${a} list, because the server used them: ${removed[a].join(", ")}`);
        if (extra[a].length > 0 && a !== "log") d.comment(`the base's own ${a} list:`).set(`global_syscall_${a}`, listValue(extra[a])).blank();
      }
      if (removed.kill.length > 0) comment.push(`removed from the base's kill list, because the server used them: ${removed.kill.join(", ")}`);
    }
    for (const c of comment) if (c === null) d.blank(); else d.comment(c);
    d.set(s.name, value);
    if (s.name === "syscall_error_errno") baseUnknown(d, bv.base);
  }
  return logged;
}

/** The base's syscall_unknown_action when not the default. */
function baseUnknown(d: PolicyDraftBuilder, base: Policy | undefined): void {
  const unknown = base?.unknownAction;
  if (unknown === "default") d.set("syscall_unknown_action", "default");
  else if (unknown && !sameAction(unknown, DEFAULT_UNKNOWN_ACTION)) d.set("syscall_unknown_action", formatAction(unknown));
}

/** One section per overlay: why it is there (the base's own lists, --deny-per-context), and its lists. */
function overlaySections(d: PolicyDraftBuilder, lv: LearnedView, bv: BaseView, overlays: readonly Overlay[], staticLogged: ReadonlySet<string>): void {
  const computed = overlays.map((o) => ({ o, ...overlayLists(o, lv, bv, staticLogged) }));
  const sessionLists = computed.find((c) => c.o.key === "session")?.lists;
  for (const { o, overlayDefault, allow, lists } of computed) {
    const setting = (a: string) => o.pattern.replace("%", a);
    d.blank().comment("-".repeat(94), `${o.key}: ${o.description}`, "");
    if (o.denyNamed.length > 0) d.comment(`--deny-per-context: ${o.denyNamed.join(", ")} (this context ran while learning and did not use them)`);
    if (o.denyOnly) {
      d.set(setting("error"), listValue(["*", ...o.denyNamed]));
      continue;
    }
    d.comment("the base's own settings for this context; everything learned anywhere and the floor stay allowed here.");
    d.set(setting("default"), formatAction(overlayDefault, bv.errorErrno));
    d.set(setting("allow"), listValue(allow));
    for (const action of RESTRICTIVE) {
      if (lists[action].length === 0) {
        // A role's unset list falls back to the session's: say '*' (the global list) explicitly.
        if (o.key.startsWith("session/") && (sessionLists?.[action].length ?? 0) > 0) d.set(setting(action), "*");
        continue;
      }
      d.comment(`denied here as the base (or --deny-per-context) says:`);
      d.set(setting(action), listValue(["*", ...lists[action]]));
    }
  }
}

/** What was learned, context by context: the record `pg_seccomp learn --merge` reads back. */
function recordSection(d: PolicyDraftBuilder, lv: LearnedView): void {
  d.blank().comment("-".repeat(94), "What was learned, per context (pg_seccomp learn --merge reads these lines back).", "");
  for (const key of [...lv.grouped.keys()].sort()) {
    const calls = lv.learnedAt(key);
    if (calls.size === 0) continue;
    d.comment(`learned in ${key}: ${plural(calls.size, "syscall")}`);
    for (const name of [...calls.keys()].sort()) d.comment(seenLine(name, calls.get(name)!));
    d.comment("");
  }
}

/**
 * The base's database overlays, kept: they stack on the session's. Their own restrictions of
 * syscalls sessions used are dropped (the server used them), and what sessions learned is
 * allowed in them (we do not learn per database).
 */
function databaseSections(d: PolicyDraftBuilder, lv: LearnedView, bv: BaseView): void {
  const sessionLearned = new Set<string>(lv.floorNames);
  for (const [key, calls] of lv.grouped) {
    if (["session", "parallel_worker", "unclassified"].includes(parseContextKey(key).context)) for (const n of calls.keys()) if (lv.known(n)) sessionLearned.add(n);
  }
  for (const [db, f] of bv.base?.databases ?? []) {
    d.blank().comment("-".repeat(94), `database ${db}: the base's settings for sessions in database ${db} (on top of the session overlays)`, "");
    d.set(`database_syscall_default.${db}`, formatAction(f.defaultAction, bv.errorErrno));
    for (const action of ["allow", ...RESTRICTIVE] as ActionKind[]) {
      const inherits = f.entries.some((e) => e.action.kind === action && e.inheritedFrom !== undefined);
      let own = f.entries.filter((e) => e.action.kind === action && e.inheritedFrom === undefined);
      const extra: string[] = [];
      if (action === "allow") {
        if (!inherits) extra.push(...[...sessionLearned].filter((n) => !own.some((e) => e.kind === "syscall" && e.name === n && e.conditions.length === 0)).sort());
      } else {
        const removed = own.filter((e) => e.kind === "syscall" && sessionLearned.has(e.name));
        if (removed.length > 0) d.comment(`removed from the base's ${action} list for ${db}, because sessions used them: ${removed.map((e) => e.text).join(", ")}`);
        own = own.filter((e) => !removed.includes(e));
      }
      // An unset list is '*' (the global list): only write what differs from that.
      if (inherits && own.length === 0 && extra.length === 0) continue;
      if (!inherits && own.length === 0 && extra.length === 0 && action !== "allow") continue;
      d.set(`database_syscall_${action}.${db}`, listValue([...(inherits ? ["*"] : []), ...own.map((e) => e.text), ...extra]));
    }
  }
}

/** The output policy as settings with their comments. */
export function learnedPolicyDraft(input: RenderInput): PolicyDraft {
  const lv = viewLearned(input);
  const bv = viewBase(input.base, input.arch);
  const d = new PolicyDraftBuilder();
  const staticLogged = globalSection(d, input, lv, bv);
  overlaySections(d, lv, bv, planOverlays(input, lv, bv), staticLogged);
  databaseSections(d, lv, bv);
  recordSection(d, lv);
  return d.draft(headerLines(input));
}

/** The output policy: seed-compatible postgresql.conf syntax, loadable with loadPolicyFile. */
export function renderLearnedPolicy(input: RenderInput): string {
  return writePolicyText(learnedPolicyDraft(input));
}
