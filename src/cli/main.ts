#!/usr/bin/env node
// The pg_seccomp command: parses arguments and prints. All logic lives in the layers below.

import { Command, CommanderError } from "commander";
import { readFileSync } from "node:fs";
import { reportError } from "./output.js";
import { registerBpfCommands, registerPolicyCommands } from "./policy-commands.js";
import { registerDemoCommand, registerServerCommands } from "./server-commands.js";
import { registerAnalyzeCommand, registerProfileCommands } from "./profile-commands.js";

// `pg_seccomp show ... | head` closes the pipe early: that is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

/** The version in the package's package.json (beside dist/ in a checkout and in an installed package). */
function packageVersion(): string {
  try {
    const v = (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: unknown }).version;
    return typeof v === "string" ? v : "unknown";
  } catch {
    return "unknown";
  }
}

const program = new Command("pg_seccomp")
  .description("seccomp-bpf syscall filtering for PostgreSQL, enforced from outside the server")
  .version(packageVersion(), "-V, --version", "print pg_seccomp's version (package.json)")
  .showHelpAfterError("(run with --help for usage)")
  .configureOutput({ writeErr: (s) => process.stderr.write(s) })
  .exitOverride();

registerPolicyCommands(program); // show compile sim check groups syscalls
registerServerCommands(program); // run status log sql learn
registerAnalyzeCommand(program);
registerDemoCommand(program);
registerProfileCommands(program); // export import audit2allow
registerBpfCommands(program);

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