// Every problem with a policy is reported as one PolicyError: where (file:line:column), what is
// wrong, and what to do about it. The CLI prints these without a stack trace.

import { PgSeccompError } from "../errors.js";

export interface SourceLoc {
  file: string;
  line: number; // 1-based
  column: number; // 1-based
}

export function formatLoc(loc: SourceLoc): string {
  return `${loc.file}:${loc.line}:${loc.column}`;
}

export class PolicyError extends PgSeccompError {
  constructor(
    readonly loc: SourceLoc | undefined,
    readonly problem: string,
    readonly hint?: string,
  ) {
    super("policy", `${loc ? formatLoc(loc) + ": " : ""}${problem}${hint ? `\nhint: ${hint}` : ""}`);
    this.name = "PolicyError";
  }
}

/** A remark about a policy that is not an error (an ignored setting, an override). */
export interface PolicyNote {
  loc: SourceLoc;
  message: string;
}
