// `pg_seccomp learn`: the output policy, in seed-compatible postgresql.conf syntax, from what was
// learned and the base (learn-plan.ts decides what it holds; this writes it with its comments as
// a policy draft). Pure.

import { formatAction, sameAction, type ActionKind } from "../policy/actions.js";
import { DEFAULT_ERROR_ERRNO, DEFAULT_UNKNOWN_ACTION, type Policy } from "../policy/policy.js";
import { errnoName } from "../syscalls/errno.js";
import { PolicyDraftBuilder, writePolicyText, type PolicyDraft } from "../policy/write.js";
import { hardeningValue } from "../policy/harden.js";
import { expandGroup } from "../syscalls/groups.js";
import { parseContextKey, type LearnedCall } from "./learn-record.js";
import {
  FLOOR_KEY, overlayLists, planOverlays, RESTRICTIVE, viewBase, viewLearned, type BaseView, type LearnedView, type Overlay, type RenderInput,
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
    "What this file allows:",
    "- global_syscall_allow: the base's allow list plus every syscall learned in any context.",
    "  The global filter applies to every process and an overlay can only restrict it, so it",
    "  must hold everything any process used.",
    "- an overlay for each context in which calls were recorded" + (input.allContexts ? " (and, with --all-contexts, for every other one)" : "") + ":",
    "  it allows what the base allows in that context (those calls were never reported, so they",
    "  cannot be left out) plus the learned syscalls that context used. A learned syscall is",
    "  therefore allowed only where it was used; elsewhere the base's decision stands (its default,",
    "  or the list it was in: such entries are listed in the overlay's own lists after '*').",
    ...(input.allContexts
      ? ["- contexts in which nothing was recorded get an overlay with the base's allow list only."]
      : ["- a context in which nothing was recorded has no overlay: it gets the global lists."]),
    ...(perRole
      ? [
          "- --per-role: each role seen gets its own session overlay (session_syscall_*.<role>); sessions",
          "  of other roles get the session overlay, which allows none of the roles' learned syscalls.",
        ]
      : []),
    "- a process not yet classified (between fork and setting its title) runs under every child",
    "  overlay at once, so what such processes used is allowed in every overlay but the postmaster's.",
    "- a parallel worker runs under its own overlay and its leader's session overlay, so what",
    "  parallel workers used is allowed in the session overlays too.",
    "- learned syscalls are removed from the base's log, error, trap and kill lists (the server used",
    "  them: denying them would break it); a learned syscall in one of the base's groups is allowed",
    "  by name, which beats the group.",
    "- no database overlays are learned (sessions are learned per role, with --per-role); the base's",
    "  database settings are kept, minus restrictions of what sessions used. Argument conditions",
    "  that the base sets in its overlays (not its global lists) are not carried over.",
    "",
    "Lines '#   name: first seen ...' record what was learned; pg_seccomp learn --merge reads them.",
  ];
}

/** The base's errno and unknown-number settings when not the defaults, then the hardening presets. */
function baseSettings(d: PolicyDraftBuilder, base: Policy | undefined): void {
  let any = false;
  if (base && base.errorErrno !== DEFAULT_ERROR_ERRNO) (any = true), d.set("syscall_error_errno", errnoName(base.errorErrno));
  const unknown = base?.unknownAction;
  if (unknown === "default") (any = true), d.set("syscall_unknown_action", "default");
  else if (unknown && !sameAction(unknown, DEFAULT_UNKNOWN_ACTION)) (any = true), d.set("syscall_unknown_action", formatAction(unknown));
  if (any) d.blank();
  // Hardening presets: the base's choice, or all of them when the base says nothing.
  d.comment(
    "Hardening presets (docs/policy.md, \"Hardening presets\"): no new namespaces, sockets only for",
    "AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE, personality locked, no setuid/setgid files, no",
    "TIOCSTI, in every process, on top of the lists below (the stricter answer wins).",
    ...(base?.hardening
      ? ["They were in force while learning (the base's): a call they denied was reported as a warning."]
      : ["The base had none, so they were not in force while learning: check the run's output and test."]),
    "To drop one write e.g. 'all, !address_families'; to drop them all, write '' (check then warns).",
  );
  d.set("syscall_harden", base?.hardening ? hardeningValue(base.hardening.presets) : "all").blank();
}

/** The global section: every learned call, the base's allow list plus the kept names, its deny lists minus them, the floor's kill list. */
function globalSection(d: PolicyDraftBuilder, input: RenderInput, lv: LearnedView, bv: BaseView): void {
  const { arch } = input;
  const { anywhere, usedIn, floorNames, keptNames, unknownNumbers } = lv;
  d.comment("-".repeat(94), "global: every process of the server", "");
  d.comment(`learned (any context): ${plural(anywhere.size, "syscall")}`);
  for (const name of [...anywhere.keys()].sort()) {
    d.comment(seenLine(name, anywhere.get(name)!, `; used in ${usedIn.get(name)!.sort().join(", ")}`));
  }
  if (unknownNumbers.length > 0) {
    d.comment(
      `${unknownNumbers.join(", ")}: not in pg_seccomp's ${arch} table (a kernel newer than the table), so not listable;`,
      `  such numbers get syscall_unknown_action (ENOSYS by default: glibc falls back to an older call)`,
    );
  }
  d.set("global_syscall_default", formatAction(bv.globalDefault, bv.errorErrno));
  const baseGlobal = bv.base?.global.entries ?? [];
  const unconditionalAllowed = new Set(baseGlobal.filter((e) => e.action.kind === "allow" && e.kind === "syscall" && e.conditions.length === 0).map((e) => e.name));
  const globalAllow = [
    ...baseGlobal.filter((e) => e.action.kind === "allow").map((e) => e.text),
    ...[...keptNames].filter((n) => !unconditionalAllowed.has(n)).sort(),
  ];
  if (floorNames.size > 0) {
    d.comment(`kept whatever was learned: the floor (profiles/floor.conf, ${plural(floorNames.size, "syscall")}: calls glibc makes on paths a learning run`);
    d.comment("  rarely reaches, such as brk and madvise from malloc/free, gettid/tgkill from abort(), sync_file_range in recovery)");
  }
  d.set("global_syscall_allow", listValue(globalAllow));
  for (const action of RESTRICTIVE) {
    const entries = baseGlobal.filter((e) => e.action.kind === action);
    if (entries.length === 0) continue;
    const removed = entries.filter((e) => e.kind === "syscall" && keptNames.has(e.name));
    const kept = entries.filter((e) => !removed.includes(e));
    const inGroups = new Map<string, string[]>();
    for (const g of kept.filter((e) => e.kind === "group")) {
      for (const name of expandGroup(g.name, arch).syscalls) {
        if (keptNames.has(name)) inGroups.set(name, [...(inGroups.get(name) ?? []), g.name]);
      }
    }
    d.blank();
    if (removed.length > 0) {
      d.comment(`removed from the base's ${action} list, because the server used them (learned; ${action === "log" ? "they are allowed now" : "denying them would break it"}):`);
      for (const e of removed) d.comment(`  ${e.text} (used in ${lv.whereUsed(e.name)})`);
    }
    if (inGroups.size > 0) {
      d.comment(`learned, and members of groups in this list: allowed by name above (a name beats a group):`);
      for (const [name, gs] of [...inGroups].sort()) d.comment(`  ${name} (${gs.join(", ")}; used in ${lv.whereUsed(name)})`);
    }
    d.set(`global_syscall_${action}`, listValue(kept.map((e) => e.text)));
  }
  // The floor's kill list, when the base has none (--base none, or a base without one).
  const floorKill = (input.floor?.kill ?? []).filter((k) => !(k.startsWith("@") ? false : keptNames.has(k)));
  if (!baseGlobal.some((e) => e.action.kind === "kill") && floorKill.length > 0) {
    d.blank().comment("the floor's kill list (profiles/floor.conf), kept whatever the base: dangerous groups, killed; a name in an", "allow list beats group membership, so nothing learned is killed");
    d.set("global_syscall_kill", listValue(floorKill));
  }
}

/** One section per overlay: what was learned there, what else it allows and why, and its lists. */
function overlaySections(d: PolicyDraftBuilder, input: RenderInput, lv: LearnedView, bv: BaseView, overlays: readonly Overlay[]): void {
  const perRole = input.perRole ?? false;
  const computed = overlays.map((o) => ({ o, ...overlayLists(o, lv, bv) }));
  const sessionLists = computed.find((c) => c.o.key === "session")?.lists;
  for (const { o, overlayDefault, allow, lists } of computed) {
    const setting = (a: string) => o.pattern.replace("%", a);
    const own = lv.learnedAt(o.key);
    const others = [...o.allowedLearned].filter(([, keys]) => !keys.includes(o.key) && !keys.includes(FLOOR_KEY));
    d.blank().comment("-".repeat(94), `${o.key}: ${o.description}`, "");
    d.comment(`learned in ${o.key}: ${plural(own.size, "syscall")}`);
    for (const name of [...own.keys()].sort()) d.comment(seenLine(name, own.get(name)!));
    for (const [name, keys] of others.sort(([a], [b]) => a.localeCompare(b))) {
      const why = keys.includes("unclassified")
        ? "processes not yet classified used it; they run under every child overlay"
        : keys.includes("parallel_worker")
          ? "parallel workers used it; they run under their leader's session overlay"
          : perRole
            ? "learned in sessions of any role (a round written without --per-role, or a role whose name cannot be a setting)"
            : "learned in session: sessions are not learned per role without --per-role";
      d.comment(`also allowed here: ${name} (${why})`);
    }
    if (lv.floorNames.size > 0) d.comment(`also allowed here: the floor (profiles/floor.conf, ${plural(lv.floorNames.size, "syscall")}), in every context`);
    d.comment(`the rest of the allow list is what the base allows here (never reported while learning).`);
    d.set(setting("default"), formatAction(overlayDefault, bv.errorErrno));
    const learnedHere = [...o.allowedLearned.keys()].sort();
    d.set(setting("allow"), listValue([...learnedHere, ...allow.slice(learnedHere.length).sort()]));
    for (const action of RESTRICTIVE) {
      if (lists[action].length === 0) {
        // A role's unset list falls back to the session's: say '*' (the global list) explicitly.
        if (o.key.startsWith("session/") && (sessionLists?.[action].length ?? 0) > 0) d.set(setting(action), "*");
        continue;
      }
      d.comment(`denied here as the base denies them (learned elsewhere, or the base's own rule for this context):`);
      d.set(setting(action), listValue(["*", ...lists[action]]));
    }
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

/** What processes not yet classified used (no overlay of their own: allowed in every child overlay). */
function unclassifiedSection(d: PolicyDraftBuilder, lv: LearnedView): void {
  const uncl = lv.learnedAt("unclassified");
  if (uncl.size === 0) return;
  d.blank().comment(
    "-".repeat(94), "unclassified: processes between fork and setting their title", "",
    `learned in unclassified: ${plural(uncl.size, "syscall")} (no overlay of its own: allowed in every child overlay above)`,
    ...[...uncl.keys()].sort().map((name) => seenLine(name, uncl.get(name)!)),
  );
}

/** The output policy as settings with their comments. */
export function learnedPolicyDraft(input: RenderInput): PolicyDraft {
  const lv = viewLearned(input);
  const bv = viewBase(input.base, input.arch);
  const d = new PolicyDraftBuilder();
  baseSettings(d, input.base);
  globalSection(d, input, lv, bv);
  overlaySections(d, input, lv, bv, planOverlays(input, lv, bv));
  databaseSections(d, lv, bv);
  unclassifiedSection(d, lv);
  return d.draft(headerLines(input));
}

/** The output policy: seed-compatible postgresql.conf syntax, loadable with loadPolicyFile. */
export function renderLearnedPolicy(input: RenderInput): string {
  return writePolicyText(learnedPolicyDraft(input));
}
