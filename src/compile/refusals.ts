// The two rules `run` adds to every program it installs, and every export carries, whatever the
// policy says (docs/design.md, "Classification"): clone with CLONE_PARENT fails with EPERM (it is
// the one way for a process other than the postmaster to create a child of the postmaster), and
// clone3 with ENOSYS (its flags, CLONE_PARENT among them, are in memory a filter cannot read;
// glibc falls back to clone). PostgreSQL uses neither. They only ever make a decision stricter.

import { decisionFor, stack, type ContextDecisions, type Decision, type Leaf } from "../policy/decision.js";
import { syscallNumber } from "../syscalls/index.js";

/** The source name of these rules in tables, logs and pseudo-code. */
export const RUN_REFUSAL_SOURCE = "pg_seccomp";

const CLONE_PARENT = 0x8000n;
const EPERM = 1;
const ENOSYS = 38;

/** A copy of `cd` with the decision for `name` replaced by `make(current)` (no-op for a name the arch lacks). */
export function withDecision(cd: ContextDecisions, name: string, make: (current: Decision) => Decision): ContextDecisions {
  const nr = syscallNumber(cd.arch, name);
  if (nr === undefined) return cd;
  const named = new Map(cd.named);
  named.set(nr, { name, decision: make(decisionFor(cd, nr)) });
  return { ...cd, named };
}

/** `cd` with the refusals added (a new object: `cd` is not changed). */
export function withRunRefusals(cd: ContextDecisions): ContextDecisions {
  const deny = (errno: number): Leaf => ({ kind: "leaf", action: { kind: "error", errno }, source: RUN_REFUSAL_SOURCE });
  const withClone = withDecision(cd, "clone", (current) => ({
    kind: "branch",
    conds: [{ arg: 0, op: "masked_eq", mask: CLONE_PARENT, value: CLONE_PARENT, width: 64 }],
    then: stack(current, deny(EPERM)),
    else: current,
  }));
  return withDecision(withClone, "clone3", (current) => stack(current, deny(ENOSYS)));
}
