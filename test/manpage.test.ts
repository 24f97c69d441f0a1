// The man page and the shell completions are written from the commander program: the page in the
// tree is what scripts/gen-man.ts writes now (run it after changing a command's help), and the
// completions complete what --help lists, in a real bash.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { buildProgram, packageVersion } from "../src/cli/program.js";
import { manPage } from "../src/cli/manpage.js";
import { bashCompletion, completionNodes, zshCompletion } from "../src/cli/completion.js";
import { repoPath } from "./support/paths.js";

test("docs/man/pg_seccomp.1 is up to date with --help (node dist/scripts/gen-man.js rewrites it)", () => {
  const page = readFileSync(repoPath("docs/man/pg_seccomp.1"), "utf8");
  assert.equal(page, manPage(buildProgram(), packageVersion()), "the man page is stale: run npx tsc -p tsconfig.json && node dist/scripts/gen-man.js");
  // Every command has its section, with the same text --help prints.
  const show = spawnSync(process.execPath, [repoPath("dist/src/cli/main.js"), "show", "--help"], { encoding: "utf8", env: { ...process.env, COLUMNS: "80" } });
  assert.match(page, /^\.SS pg_seccomp show$/m);
  assert.ok(page.replace(/\\-/g, "-").includes(show.stdout.split("\n")[0]!), "show's usage line is in the page");
  for (const n of completionNodes(buildProgram()).filter((x) => x.path !== "")) assert.match(page, new RegExp(`^\\.SS pg_seccomp ${n.path}$`, "m"));
  const man = spawnSync("man", ["-l", repoPath("docs/man/pg_seccomp.1")], { encoding: "utf8", env: { ...process.env, MANWIDTH: "100" } });
  if (man.status === 0) assert.match(man.stdout, /pg_seccomp check \[options\] <policy>/);
});

/** What bash completes for the words typed so far (the last one is the word being completed). */
function bashComplete(script: string, words: string[]): string[] {
  const line = ["pg_seccomp", ...words];
  const prog = `${script}\nCOMP_WORDS=(${line.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${line.length - 1}; _pg_seccomp; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync("bash", ["--norc", "-c", prog], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean).sort();
}

test("bash completion: commands, subcommands, options and option choices, from the program", () => {
  const r = spawnSync(process.execPath, [repoPath("dist/src/cli/main.js"), "completion", "bash"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const script = r.stdout;
  assert.equal(script, bashCompletion(buildProgram()));
  assert.deepEqual(bashComplete(script, ["ch"]), ["check"]);
  assert.deepEqual(bashComplete(script, ["bpf", ""]), ["asm", "disasm"]);
  assert.deepEqual(bashComplete(script, ["show", "--format", ""]), ["csv", "json", "table"]);
  assert.deepEqual(bashComplete(script, ["show", "x.conf", "--arch", "a"]), ["aarch64"]);
  assert.ok(bashComplete(script, ["check", "--"]).includes("--json"));
  // The value of an option is not taken for a subcommand: `sql install -d bpf` stays in sql install.
  assert.ok(bashComplete(script, ["sql", "install", "-d", "bpf", "--"]).includes("--dbname"));
});

test("zsh completion: the same tables, a #compdef file", () => {
  const r = spawnSync(process.execPath, [repoPath("dist/src/cli/main.js"), "completion", "zsh"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, zshCompletion(buildProgram()));
  assert.match(r.stdout, /^#compdef pg_seccomp\n/);
  assert.match(r.stdout, /"show --format"\) echo "table csv json"/);
  const zsh = spawnSync("zsh", ["-n", "-c", r.stdout], { encoding: "utf8" });
  if (!zsh.error) assert.equal(zsh.status, 0, zsh.stderr);
  // The tables' shell functions are plain POSIX sh: bash runs them the same way.
  const b = spawnSync("bash", ["--norc", "-c", `${r.stdout.replace(/^_pg_seccomp\(\) \{[^]*$/m, "")}\n_pg_seccomp_cmdpath sql install -d bpf`], { encoding: "utf8" });
  assert.equal(b.stdout.trim(), "sql install");
});
