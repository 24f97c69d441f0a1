// Every command the docs show is run by a test, exactly as written (issue 18). Each fenced block
// of README.md and docs/*.md has a language; a block in a command language (sh, console, bash,
// shell, sql) also says how it is tested, in its info string:
//   ```sh test=NAME          test/NAME.test.ts runs it, reading it with blocksTestedBy("NAME")
//   ```console test=output   `$ command` lines, each followed by its exact output: run here, compared
//   ```sh not-run="why"      not runnable here (systemd as PID 1, docker, kubectl): the reason
// A new block without one fails this test, so new docs cannot drift untested.
//
// `test=output` normalisers (documented, the only ones): a command runs with `sh -c` in the
// repository after `npm run build`, `npx pg_seccomp` and `pg_seccomp` both being this checkout's
// dist/src/cli/main.js (what npx resolves in a checkout; no registry); outputs are compared
// exactly, except that values that are machine-specific are written in the docs as `<...>`
// placeholders (`<version>`, `<pid>`, `<path>`, `<ms>`) and match any text without a newline.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allDocBlocks, blocksTestedBy, type DocBlock } from "./support/doc-blocks.js";
import { repoPath } from "./support/paths.js";

const COMMAND_LANGS = new Set(["sh", "console", "bash", "shell", "sql"]);
const BLOCKS = allDocBlocks();
const where = (b: DocBlock) => `${b.file}:${b.line}`;

test("docs: every fenced block has a language, and every command block says how it is tested", () => {
  const problems: string[] = [];
  for (const b of BLOCKS) {
    if (!b.lang) problems.push(`${where(b)}: no language (write sh, console, conf, yaml, json, text ...)`);
    if (!COMMAND_LANGS.has(b.lang)) continue;
    const how = b.attrs.get("test");
    const notRun = b.attrs.get("not-run");
    if ((how === undefined) === (notRun === undefined)) problems.push(`${where(b)}: a ${b.lang} block needs test=NAME, test=output or not-run="reason"`);
    if (notRun !== undefined && notRun.trim().length < 10) problems.push(`${where(b)}: not-run needs a reason`);
    if (b.lang === "console" && how !== undefined && how !== "output") problems.push(`${where(b)}: a console block is test=output`);
  }
  assert.deepEqual(problems, []);
  assert.ok(BLOCKS.length > 30, `${BLOCKS.length} blocks`);
});

test("docs: each test=NAME names a test file that reads its blocks from the Markdown", () => {
  const problems: string[] = [];
  for (const name of new Set(BLOCKS.map((b) => b.attrs.get("test")).filter((n): n is string => n !== undefined && n !== "output"))) {
    const file = repoPath(`test/${name}.test.ts`);
    if (!existsSync(file)) problems.push(`test=${name}: no test/${name}.test.ts`);
    else if (!readFileSync(file, "utf8").includes(`blocksTestedBy("${name}")`)) problems.push(`test=${name}: test/${name}.test.ts does not read its blocks (blocksTestedBy("${name}"))`);
  }
  assert.deepEqual(problems, []);
});

/** `$ command` lines and the output after each, up to the next `$ ` line. */
function consoleSteps(body: string): Array<{ command: string; output: string }> {
  const steps: Array<{ command: string; output: string[] }> = [];
  for (const line of body.replace(/\n$/, "").split("\n")) {
    if (line.startsWith("$ ")) steps.push({ command: line.slice(2), output: [] });
    else {
      assert.ok(steps.length > 0, `output before any $ line: ${line}`);
      steps.at(-1)!.output.push(line);
    }
  }
  return steps.map((s) => ({ command: s.command, output: s.output.join("\n") }));
}

function placeholderPattern(expected: string): RegExp {
  const parts = expected.split(/(<(?:version|pid|path|ms)>)/);
  return new RegExp("^" + parts.map((p, i) => (i % 2 ? "[^\\n]+" : p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("") + "$");
}

test("docs: every test=output block prints exactly what the docs show", () => {
  const blocks = BLOCKS.filter((b) => b.attrs.get("test") === "output");
  assert.ok(blocks.length > 0);
  const bin = mkdtempSync(join(tmpdir(), "docs-commands-"));
  try {
    // This checkout's CLI under both names the docs use.
    const shim = `#!/bin/sh\nexec "${process.execPath}" "${repoPath("dist/src/cli/main.js")}" "$@"\n`;
    writeFileSync(join(bin, "pg_seccomp"), shim);
    writeFileSync(join(bin, "npx"), `#!/bin/sh\n[ "$1" = pg_seccomp ] || { echo "docs-commands: only npx pg_seccomp is known" >&2; exit 99; }\nshift\nexec "${join(bin, "pg_seccomp")}" "$@"\n`);
    chmodSync(join(bin, "pg_seccomp"), 0o755);
    chmodSync(join(bin, "npx"), 0o755);
    for (const b of blocks) {
      for (const step of consoleSteps(b.body)) {
        const r = spawnSync("sh", ["-c", step.command], { cwd: repoPath("."), encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
        const out = ((r.stdout ?? "") + (r.stderr ?? "")).replace(/\n$/, "");
        assert.match(out, placeholderPattern(step.output), `${where(b)}: $ ${step.command}`);
      }
    }
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});

test("docs: the operator manifests have the shape their kind needs and name the exported profile", () => {
  const section = blocksTestedBy("docs-commands");
  assert.ok(section.every((b) => b.section === "Exporting for systemd / containers / Kubernetes"), "the blocks this test reads are the exported-profile ones");
  const exportCmd = section.find((b) => b.lang === "sh" && /pg_seccomp export .*--format k8s/.test(b.body));
  assert.ok(exportCmd, "the k8s export command");
  const name = /--name (\S+)/.exec(exportCmd.body)?.[1];
  assert.ok(name);
  const manifests = section.filter((b) => b.lang === "yaml");
  const kinds = new Map([["Cluster", "postgresql.cnpg.io/v1"], ["ProfileBinding", "security-profiles-operator.x-k8s.io/v1alpha1"]]);
  assert.equal(manifests.length, kinds.size);
  for (const m of manifests) {
    assert.doesNotMatch(m.body, /\t/, `${where(m)}: tabs`);
    for (const l of m.body.split("\n")) assert.equal((/^ */.exec(l)![0].length) % 2, 0, `${where(m)}: indentation: ${l}`);
    const kind = /^kind: (\S+)$/m.exec(m.body)?.[1];
    assert.ok(kind && kinds.has(kind), `${where(m)}: kind ${kind}`);
    assert.match(m.body, new RegExp(`^apiVersion: ${kinds.get(kind)!.replace(/\./g, "\\.")}$`, "m"), where(m));
    assert.match(m.body, /^metadata:\n {2}name: \S+$/m, where(m));
    if (kind === "Cluster") assert.match(m.body, new RegExp(`^ {2}seccompProfile:\\n {4}type: Localhost\\n {4}localhostProfile: operator/${name}\\.json$`, "m"), where(m));
    else assert.match(m.body, new RegExp(`^ {2}profileRef:\\n {4}kind: SeccompProfile\\n {4}name: ${name}$`, "m"), where(m));
  }
  // The export writes the SeccompProfile under that name (the operator's file is operator/NAME.json).
  const r = spawnSync(process.execPath, [repoPath("dist/src/cli/main.js"), "export", repoPath("profiles/postgresql-15-x86_64.conf"), "--format", "k8s", "--name", name], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^kind: SeccompProfile$[^]*^ {2}name: ${name}$`, "m"));
});

test("docs: deploy.md's count of the starter profile's OCI rules is what export writes", () => {
  const md = readFileSync(repoPath("docs/deploy.md"), "utf8");
  const said = Number(/The starter profile becomes (\d+) rules/.exec(md)?.[1]);
  const r = spawnSync(process.execPath, [repoPath("dist/src/cli/main.js"), "export", repoPath("profiles/postgresql-15-x86_64.conf"), "--format", "oci"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(said, (JSON.parse(r.stdout) as { syscalls: unknown[] }).syscalls.length, "docs/deploy.md, \"The starter profile becomes N rules\"");
});
