import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { expandGroup, groupInfo, groupNames, NON_NATIVE_MEMBERS, resolveGroup } from "./groups.js";
import { ARCHES, allSyscalls, syscallNumber } from "./index.js";

const SYSTEMD_GROUPS = [
  "@aio", "@basic-io", "@chown", "@clock", "@cpu-emulation", "@debug", "@file-system", "@io-event", "@ipc",
  "@keyring", "@memlock", "@module", "@mount", "@network-io", "@obsolete", "@pkey", "@privileged", "@process",
  "@raw-io", "@reboot", "@resources", "@sandbox", "@setuid", "@signal", "@swap", "@sync", "@system-service",
  "@timer", "@known", "@default",
];

const onSomeArch = (name: string) => ARCHES.some((a) => syscallNumber(a, name) !== undefined);

/** Every plain (non-@) member name written in any group except @known. */
function writtenMembers(): Set<string> {
  const names = new Set<string>();
  for (const g of groupNames()) {
    if (g === "@known") continue;
    for (const m of groupInfo(g)!.members) if (!m.startsWith("@")) names.add(m);
  }
  return names;
}

describe("group catalogue", () => {
  it("has systemd's groups, @default first and @known last", () => {
    const names = groupNames();
    assert.deepEqual([...names].sort(), [...SYSTEMD_GROUPS].sort());
    assert.equal(names[0], "@default");
    assert.equal(names[names.length - 1], "@known");
    assert.deepEqual(names.slice(1, -1), [...names.slice(1, -1)].sort());
  });

  it("groupNames() returns a fresh array", () => {
    groupNames().push("@mutated");
    assert.ok(!groupNames().includes("@mutated"));
  });

  it("describes every group", () => {
    for (const name of groupNames()) {
      const info = groupInfo(name);
      assert.ok(info, name);
      assert.equal(info.name, name);
      assert.ok(info.description.length > 5, name);
      assert.ok(info.members.length > 0, name);
      assert.equal(new Set(info.members).size, info.members.length, `${name} lists a member twice`);
    }
    assert.equal(groupInfo("@file-system")!.description, "File system operations");
    assert.equal(groupInfo("file-system"), undefined);
    assert.equal(groupInfo("@nope"), undefined);
  });

  it("keeps nested references as written", () => {
    const svc = groupInfo("@system-service")!.members;
    for (const ref of ["@aio", "@basic-io", "@default", "@file-system", "@network-io", "@process", "@timer"]) {
      assert.ok(svc.includes(ref), ref);
    }
    assert.ok(groupInfo("@default")!.members.includes("@sandbox"));
    assert.deepEqual(groupInfo("@privileged")!.members.filter((m) => m.startsWith("@")), ["@chown", "@clock", "@module", "@raw-io", "@reboot", "@swap"]);
    assert.equal(groupInfo("@known")!.members[0], "@obsolete");
  });

  it("every nested reference names a group", () => {
    for (const name of groupNames()) {
      for (const m of groupInfo(name)!.members) if (m.startsWith("@")) assert.ok(groupInfo(m), `${name} -> ${m}`);
    }
  });
});

describe("resolveGroup", () => {
  it("finds groups", () => {
    const r = resolveGroup("@network-io");
    assert.ok(r.ok);
    assert.equal(r.info.name, "@network-io");
  });

  it("suggests close names", () => {
    const r = resolveGroup("@filesystem");
    assert.ok(!r.ok);
    assert.equal(r.message, `unknown syscall group "@filesystem"; did you mean "@file-system"?`);
    const s = resolveGroup("@system_service");
    assert.ok(!s.ok);
    assert.match(s.message, /did you mean "@system-service"\?$/);
  });

  it("points out a missing @", () => {
    const r = resolveGroup("file-system");
    assert.ok(!r.ok);
    assert.match(r.message, /did you mean "@file-system"\? \(group names start with "@"\)/);
  });

  it("lists the groups when nothing is close", () => {
    const r = resolveGroup("@completely-unrelated");
    assert.ok(!r.ok);
    assert.match(r.message, /^unknown syscall group "@completely-unrelated" \(known groups: @default, @aio, /);
  });
});

describe("expandGroup", () => {
  it("expands plain groups per arch", () => {
    assert.deepEqual(expandGroup("@swap", "x86_64"), { syscalls: ["swapoff", "swapon"], missing: [] });
    assert.deepEqual(expandGroup("@sandbox", "aarch64"), {
      syscalls: ["landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "seccomp"],
      missing: [],
    });
  });

  it("skips members that do not exist on the arch and reports them", () => {
    const x = expandGroup("@file-system", "x86_64");
    const a = expandGroup("@file-system", "aarch64");
    assert.ok(x.syscalls.includes("open") && x.syscalls.includes("stat"));
    assert.ok(!a.syscalls.includes("open") && !a.syscalls.includes("stat"));
    assert.ok(a.missing.includes("open") && a.missing.includes("stat"));
    assert.ok(a.syscalls.includes("openat") && a.syscalls.includes("newfstatat") && a.syscalls.includes("fstat"));
    assert.ok(x.missing.includes("stat64") && x.missing.includes("fcntl64"));
    assert.ok(!x.missing.includes("open"));
  });

  it("expands nested groups recursively", () => {
    for (const arch of ARCHES) {
      const svc = expandGroup("@system-service", arch);
      for (const nested of ["@default", "@sandbox", "@basic-io", "@file-system", "@network-io", "@timer", "@signal"]) {
        for (const s of expandGroup(nested, arch).syscalls) assert.ok(svc.syscalls.includes(s), `${arch}: ${nested}/${s} not in @system-service`);
      }
      // @sandbox reaches @system-service through @default.
      assert.ok(svc.syscalls.includes("landlock_restrict_self"));
      assert.ok(svc.syscalls.includes("read") && svc.syscalls.includes("openat") && svc.syscalls.includes("socket"));
      assert.ok(!svc.syscalls.includes("mount") && !svc.syscalls.includes("reboot") && !svc.syscalls.includes("ptrace"));

      const priv = expandGroup("@privileged", arch);
      for (const s of ["fchownat", "clock_settime", "init_module", "reboot", "swapon", "setuid"]) assert.ok(priv.syscalls.includes(s), `${arch}: ${s}`);
    }
    assert.ok(expandGroup("@privileged", "x86_64").syscalls.includes("iopl"));
    assert.ok(!expandGroup("@privileged", "aarch64").syscalls.includes("iopl"));
  });

  it("returns sorted, deduplicated lists, disjoint syscalls and missing", () => {
    for (const arch of ARCHES) {
      for (const name of groupNames()) {
        const { syscalls, missing } = expandGroup(name, arch);
        assert.deepEqual(syscalls, [...new Set(syscalls)].sort(), `${arch} ${name}`);
        assert.deepEqual(missing, [...new Set(missing)].sort(), `${arch} ${name}`);
        for (const m of missing) assert.ok(!syscalls.includes(m));
        for (const m of missing) assert.ok(!m.startsWith("@"), `${arch} ${name}: group ${m} reported missing`);
      }
    }
  });

  it("never expands to a name absent from the arch's table", () => {
    for (const arch of ARCHES) {
      for (const name of groupNames()) {
        for (const s of expandGroup(name, arch).syscalls) assert.notEqual(syscallNumber(arch, s), undefined, `${arch} ${name}: ${s}`);
        for (const s of expandGroup(name, arch).missing) assert.equal(syscallNumber(arch, s), undefined, `${arch} ${name}: ${s}`);
      }
    }
  });

  it("@known is exactly the arch's table", () => {
    for (const arch of ARCHES) {
      const known = expandGroup("@known", arch);
      assert.equal(known.syscalls.length, allSyscalls(arch).length, arch);
      assert.deepEqual(known.syscalls, allSyscalls(arch).map((e) => e.name).sort());
      for (const s of expandGroup("@obsolete", arch).syscalls) assert.ok(known.syscalls.includes(s));
    }
    assert.ok(expandGroup("@known", "aarch64").missing.includes("open"));
    assert.ok(expandGroup("@known", "x86_64").missing.includes("break"));
  });

  it("returns copies that callers may mutate", () => {
    const e = expandGroup("@swap", "x86_64");
    e.syscalls.push("reboot");
    assert.deepEqual(expandGroup("@swap", "x86_64").syscalls, ["swapoff", "swapon"]);
  });

  it("throws with a did-you-mean message for unknown groups", () => {
    assert.throws(() => expandGroup("@filesystem", "x86_64"), /unknown syscall group "@filesystem"; did you mean "@file-system"\?/);
  });
});

describe("member names", () => {
  it("are all in some table or known to be non-native", (t) => {
    const neither = [...writtenMembers()].filter((n) => !onSomeArch(n)).sort();
    const unexplained = neither.filter((n) => !(n in NON_NATIVE_MEMBERS));
    assert.deepEqual(unexplained, [], `group members on neither arch and not classified: ${unexplained.join(" ")}`);
    t.diagnostic(`${neither.length} member names exist on neither x86_64 nor aarch64: ${neither.join(" ")}`);
  });

  it("the non-native list has no stale entries", () => {
    const written = writtenMembers();
    for (const name of Object.keys(NON_NATIVE_MEMBERS)) {
      assert.ok(!onSomeArch(name), `${name} is in a table now; drop it from NON_NATIVE_MEMBERS`);
      assert.ok(written.has(name), `${name} is not a member of any group`);
    }
  });

  it("systemd's never-implemented names are missing everywhere", () => {
    for (const arch of ARCHES) {
      const obs = expandGroup("@obsolete", arch);
      for (const name of ["break", "ftime", "gtty", "idle", "lock", "mpx", "prof", "profil", "stty", "ulimit"]) {
        assert.ok(obs.missing.includes(name), `${arch} ${name}`);
      }
    }
    // ... while the x86_64 table still reserves some of the obsolete numbers.
    assert.ok(expandGroup("@obsolete", "x86_64").syscalls.includes("uselib"));
    assert.ok(expandGroup("@obsolete", "x86_64").syscalls.includes("_sysctl"));
  });
});
