#!/usr/bin/env node
// The pg_seccomp command: parses arguments and prints. All logic lives in the layers below.

import { CommanderError } from "commander";
import { reportError } from "./output.js";
import { buildProgram } from "./program.js";

// `pg_seccomp show ... | head` closes the pipe early: that is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

const program = buildProgram();

async function main(): Promise<number> {
  try {
    await program.parseAsync(process.argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    return reportError(e);
  }
}

process.exitCode = await main();
