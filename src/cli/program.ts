// The pg_seccomp program: every command and option, as commander holds them. main.ts runs it; the
// man page (scripts/gen-man.ts) and the shell completions (completion.ts) are written from it, so
// that --help, the man page and the completions cannot drift apart.

import { Command } from "commander";
import { readFileSync } from "node:fs";
import { PROGRAM } from "./output.js";
import { registerBpfCommands, registerPolicyCommands } from "./policy-commands.js";
import { registerDemoCommand, registerServerCommands } from "./server-commands.js";
import { registerAnalyzeCommand, registerProfileCommands } from "./profile-commands.js";
import { registerCompletionCommand } from "./completion.js";

/** The version in the package's package.json (beside dist/ in a checkout and in an installed package). */
export function packageVersion(): string {
  try {
    const v = (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: unknown }).version;
    return typeof v === "string" ? v : "unknown";
  } catch {
    return "unknown";
  }
}

export function buildProgram(): Command {
  const program = new Command(PROGRAM)
    .description("seccomp-bpf syscall filtering for PostgreSQL, enforced from outside the server")
    .version(packageVersion(), "-V, --version", "print pg_seccomp's version (package.json)")
    // Option errors as PostgreSQL's clients write them: "pg_dump: error: ..." then a hint naming --help.
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: (s, write) => write(`${PROGRAM}: ${s}`) })
    .exitOverride();

  registerPolicyCommands(program); // show compile sim check groups syscalls
  registerServerCommands(program); // run status log sql learn
  registerAnalyzeCommand(program);
  registerDemoCommand(program);
  registerProfileCommands(program); // export import audit2allow
  registerBpfCommands(program);
  registerCompletionCommand(program);
  setHelpHints(program, []);
  return program;
}

/** Every command's option errors end with pg_dump's hint, naming that command's --help. */
function setHelpHints(cmd: Command, path: string[]): void {
  cmd.showHelpAfterError(`${PROGRAM}: hint: Try "${[PROGRAM, ...path].join(" ")} --help" for more information.`);
  for (const sub of cmd.commands) setHelpHints(sub, [...path, sub.name()]);
}
