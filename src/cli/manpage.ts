// The man page, written from the same commander program as --help: each command's help text,
// exactly as `pg_seccomp COMMAND --help` prints it at 80 columns, in a roff page.
// scripts/gen-man.ts writes docs/man/pg_seccomp.1; test/manpage.test.ts checks it is up to date.

import type { Command } from "commander";

/** A line of text for roff: backslashes doubled, hyphens as \-, a leading . or ' guarded by \&. */
function roffLine(s: string): string {
  const t = s.replace(/\\/g, "\\e").replace(/-/g, "\\-");
  return /^[.']/.test(t) ? `\\&${t}` : t;
}

/** The help text of `cmd` at a fixed width and without colour, so the page does not depend on the terminal. */
function helpText(cmd: Command): string {
  cmd.configureHelp({ helpWidth: 80 });
  cmd.configureOutput({ getOutHasColors: () => false, getOutHelpWidth: () => 80 });
  return cmd.helpInformation().trimEnd();
}

function commandsOf(cmd: Command, path: string[]): Array<{ path: string[]; cmd: Command }> {
  return cmd.commands.flatMap((c) => [{ path: [...path, c.name()], cmd: c }, ...commandsOf(c, [...path, c.name()])]);
}

export function manPage(program: Command, version: string): string {
  const name = program.name();
  const preformatted = (text: string) => [".nf", ...text.split("\n").map(roffLine), ".fi"];
  const lines = [
    `.\\" Written by scripts/gen-man.ts from the commands' --help text; do not edit.`,
    `.TH ${name.toUpperCase().replace(/_/g, "\\_")} 1 "" "${name} ${version}" "User Commands"`,
    ".SH NAME",
    `${name} \\- ${roffLine(program.description())}`,
    ".SH SYNOPSIS",
    `.B ${name}`,
    ".I command",
    "[options]",
    ".SH DESCRIPTION",
    ...preformatted(helpText(program)),
    ".SH COMMANDS",
    ...commandsOf(program, []).flatMap(({ path, cmd }) => [`.SS ${[name, ...path].join(" ")}`, ...preformatted(helpText(cmd))]),
    ".SH EXIT STATUS",
    "0 success; 1 a policy, input or runtime error; 2 a usage error; 70 an internal error (please report it).",
    ".SH SEE ALSO",
    "docs/policy.md, docs/deploy.md, docs/design.md in the pg_seccomp sources; seccomp(2).",
  ];
  return lines.join("\n") + "\n";
}
