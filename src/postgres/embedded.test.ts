import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hydrateSymlinks } from "./embedded.js";

test("hydrateSymlinks makes the package's library links once, relative, and refuses links out of its directory", () => {
  const root = mkdtempSync(join(tmpdir(), "pg_seccomp-hydrate-"));
  try {
    const native = join(root, "native");
    mkdirSync(join(native, "lib"), { recursive: true });
    writeFileSync(join(native, "lib", "libz.so.1.2.11"), "");
    writeFileSync(join(native, "pg-symlinks.json"), JSON.stringify([
      { source: "native/lib/libz.so.1.2.11", target: "native/lib/libz.so.1" },
      { source: "native/lib/libz.so.1.2.11", target: "native/lib/libz.so" },
    ]));
    assert.equal(hydrateSymlinks(native), 2);
    assert.equal(readlinkSync(join(native, "lib", "libz.so.1")), "libz.so.1.2.11");
    assert.equal(hydrateSymlinks(native), 0, "idempotent");
    writeFileSync(join(native, "pg-symlinks.json"), JSON.stringify([{ source: "../etc/passwd", target: "native/lib/libx.so" }]));
    assert.throws(() => hydrateSymlinks(native), /unexpected link/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
