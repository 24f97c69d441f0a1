// Exit codes by kind of error: every error class the CLI reports keeps the exit code it had when
// codes were chosen by class name (usage 2, everything written for the user 1, a bug 70).

import { test } from "node:test";
import assert from "node:assert/strict";
import { ERROR_KINDS, errorKindOf } from "../errors.js";
import { EXIT_CODE, UsageError } from "./output.js";
import { PolicyError } from "../policy/errors.js";
import { CompileError } from "../compile/compile.js";
import { AsmError } from "../bpf/asm.js";
import { KernelError, KernelUnavailableError } from "../kernel/errors.js";
import { StatusError } from "../inspect/status.js";
import { AnalyzeError } from "../analyze/analyze.js";
import { ExportError } from "../export/common.js";
import { LaunchError } from "../launcher/run.js";
import { SupervisionError } from "../supervisor/supervision.js";
import { DataDirError } from "../host/data-dir.js";
import { LogNotFoundError } from "../inspect/violations.js";

const exitCodeOf = (e: unknown): number => {
  const kind = errorKindOf(e);
  return kind === undefined ? 70 : EXIT_CODE[kind];
};

test("each error class exits as before", () => {
  const cases: [unknown, number, string][] = [
    [new UsageError("x"), 2, "UsageError"],
    [new StatusError("no such server"), 2, "StatusError"],
    [new AnalyzeError("no such binary"), 2, "Error"],
    // These were usage errors by being named "UsageError".
    [new ExportError("x"), 2, "UsageError"],
    [new LaunchError("x"), 2, "UsageError"],
    [new SupervisionError("x"), 2, "UsageError"],
    [new DataDirError("x"), 2, "UsageError"],
    [new LogNotFoundError("x"), 2, "UsageError"],
    [new PolicyError(undefined, "bad"), 1, "PolicyError"],
    [new CompileError(undefined, "too long"), 1, "CompileError"],
    [new AsmError(1, 2, "bad mnemonic"), 1, "AsmError"],
    [new KernelError("seccomp", 22), 1, "KernelError"],
    [new KernelUnavailableError("no libc"), 70, "KernelUnavailableError"],
    [new Error("a bug"), 70, "Error"],
    ["a string", 70, ""],
  ];
  for (const [e, code, name] of cases) {
    assert.equal(exitCodeOf(e), code, String(e));
    if (e instanceof Error) assert.equal(e.name, name, "the name is unchanged");
  }
});

test("every kind has an exit code", () => {
  for (const k of ERROR_KINDS) assert.ok(Number.isInteger(EXIT_CODE[k]) && EXIT_CODE[k] > 0, k);
});
