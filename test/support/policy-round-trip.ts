// Round trip of a policy draft: what writePolicyText writes reads back to the settings the draft
// holds, and the policy read from the text has the effective table of the policy built from the
// draft as data. Shared by the unit tests of every writer (learn, audit2allow, profiles, import).

import assert from "node:assert/strict";
import { readConfText } from "../../src/policy/conf.js";
import type { ContextSpec } from "../../src/policy/decision.js";
import { parsePolicyText, PROCESS_KINDS, type Policy } from "../../src/policy/policy.js";
import { draftPolicy, draftSettings, writePolicyText, type PolicyDraft } from "../../src/policy/write.js";
import { effectiveFilterRows } from "../../src/render/effective-table.js";
import type { Arch } from "../../src/syscalls/index.js";

/** Every context the policy can tell apart: global, each process kind, sessions of each role and database. */
export function contextsOf(policy: Policy): ContextSpec[] {
  return [
    { context: "global" },
    ...PROCESS_KINDS.map((context) => ({ context })),
    { context: "session" },
    ...[...policy.roles.keys()].map((role) => ({ context: "session" as const, role })),
    ...[...policy.databases.keys()].map((database) => ({ context: "session" as const, database })),
  ];
}

/** Asserts that the text reads back to the draft's settings (a snippet need not be a whole policy). */
export function assertSettingsRoundTrip(draft: PolicyDraft, text = writePolicyText(draft)): void {
  const read = readConfText(text, "written.conf").settings.map((s) => [s.name, s.value]);
  assert.deepEqual(read, draftSettings(draft).map((s) => [s.name, s.value]), "the text reads back to the draft's settings");
}

/** Asserts the round trip of a whole policy and returns the policy read back. */
export function assertRoundTrip(draft: PolicyDraft, arch: Arch, text = writePolicyText(draft)): Policy {
  assertSettingsRoundTrip(draft, text);
  const parsed = parsePolicyText(text, "written.conf");
  const built = draftPolicy(draft);
  for (const c of contextsOf(built)) {
    assert.deepEqual(effectiveFilterRows(parsed, arch, [c]), effectiveFilterRows(built, arch, [c]), `the effective table of ${JSON.stringify(c)}`);
  }
  return parsed;
}
