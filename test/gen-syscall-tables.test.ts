// The generator of src/syscalls/table-*.ts (scripts/gen-syscall-tables.ts): reading the kernel's
// syscall tables. Here, not beside src/syscalls/: source tests import only source.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseMakefileAbis, parseTbl, selectTable } from "../scripts/gen-syscall-tables.js";

describe("table generator", () => {
  const x86 = [
    "# comment",
    "0\tcommon\tread\t\t\tsys_read",
    "13\t64\trt_sigaction\t\tsys_rt_sigaction",
    "134\t64\tuselib",
    "462 \tcommon  mseal\t\t\tsys_mseal",
    "",
    "512\tx32\trt_sigaction\t\tcompat_sys_rt_sigaction",
  ].join("\n");

  it("keeps common and 64 rows, drops x32 rows, keeps rows without entry point", () => {
    const t = selectTable(parseTbl(x86), ["common", "64"], "x86_64");
    assert.deepEqual(t, [
      ["read", 0],
      ["rt_sigaction", 13],
      ["uselib", 134],
      ["mseal", 462],
    ]);
  });

  it("selects arm64's ABIs from the generic table", () => {
    const generic = [
      "25\t32\tfcntl64\t\tsys_fcntl64",
      "25\t64\tfcntl\t\tsys_fcntl",
      "38\trenameat renameat\t\tsys_renameat",
      "163\trlimit\tgetrlimit\t\tsys_getrlimit",
      "244\tcsky\tset_thread_area\t\tsys_set_thread_area",
      "258\triscv\triscv_hwprobe\t\tsys_riscv_hwprobe",
      "447\tmemfd_secret\tmemfd_secret\t\tsys_memfd_secret",
    ].join("\n");
    const abis = ["common", "64", ...parseMakefileAbis("syscall_abis_32 +=\nsyscall_abis_64 += renameat newstat rlimit memfd_secret\n")];
    assert.deepEqual(abis, ["common", "64", "renameat", "newstat", "rlimit", "memfd_secret"]);
    assert.deepEqual(selectTable(parseTbl(generic), abis, "aarch64"), [
      ["fcntl", 25],
      ["renameat", 38],
      ["getrlimit", 163],
      ["memfd_secret", 447],
    ]);
  });

  it("rejects duplicates and malformed rows", () => {
    assert.throws(() => selectTable(parseTbl("1\tcommon\ta\n1\tcommon\tb"), ["common"], "t"), /number 1/);
    assert.throws(() => selectTable(parseTbl("1\tcommon\ta\n2\tcommon\ta"), ["common"], "t"), /defined twice/);
    assert.throws(() => parseTbl("x\tcommon\ta"), /cannot parse/);
  });
});
