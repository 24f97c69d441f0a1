import { test } from "node:test";
import assert from "node:assert/strict";
import { capabilityWarnings, dataDirOf, missingCapabilities, serverEnvironment, SERVER_PATH } from "./run.js";

test("the data directory comes from -D, -DDIR, --pgdata or PGDATA", () => {
  assert.equal(dataDirOf(["-D", "/d"]), "/d");
  assert.equal(dataDirOf(["-c", "x=1", "-D/d2"]), "/d2");
  assert.equal(dataDirOf(["--pgdata=/d3"]), "/d3");
  assert.equal(dataDirOf(["-p", "5432"], { PGDATA: "/env" }), "/env");
  assert.equal(dataDirOf([], {}), undefined);
});

test("missing capabilities are named with the reason", () => {
  const all = "CapEff:\t000001ffffffffff\n";
  assert.deepEqual(missingCapabilities(true, all), []);
  const noPtraceNoKill = `CapEff:\t${(0x1ffffffffffn & ~(1n << 19n) & ~(1n << 5n)).toString(16)}\n`;
  assert.deepEqual(missingCapabilities(true, noPtraceNoKill).map((m) => m.split(" ")[0]), ["CAP_KILL", "CAP_SYS_PTRACE"]);
  assert.deepEqual(missingCapabilities(false, noPtraceNoKill).map((m) => m.split(" ")[0]), ["CAP_KILL"], "no supervisor: no pidfd_getfd");
});

test("optional capabilities: each missing one is named with the feature that will not work", () => {
  const caps = (bits: number[]) => `CapEff:\t${bits.reduce((a, b) => a | (1n << BigInt(b)), 0n).toString(16)}\n`;
  const documented = [0, 1, 5, 6, 7, 12, 19, 34, 37]; // CHOWN DAC_OVERRIDE KILL SETGID SETUID NET_ADMIN SYS_PTRACE SYSLOG AUDIT_READ
  assert.deepEqual(capabilityWarnings(true, caps(documented)), []);
  assert.deepEqual(missingCapabilities(true, caps(documented)), []);
  const noDac = capabilityWarnings(true, caps(documented.filter((b) => b !== 1)));
  assert.equal(noDac.length, 1);
  assert.match(noDac[0]!, /^without CAP_DAC_OVERRIDE: set_client_filter\(\) will not work/);
  assert.deepEqual(capabilityWarnings(true, caps(documented.filter((b) => b !== 1)), false), [], "set_client_filter off: no spool to create");
  assert.deepEqual(capabilityWarnings(false, caps([5, 6, 7])).map((w) => w.split(":")[0]), ["without CAP_SYSLOG"], "no supervisor: no spool, no log");
});

test("run --user: the server's environment is the user's (passwd HOME, USER, LOGNAME, SHELL, a plain PATH) plus the documented variables", () => {
  const callers = { HOME: "/root", USER: "root", PATH: "/root/bin:/usr/bin", LANG: "C.UTF-8", LC_ALL: "C", TZ: "UTC", PGDATA: "/d", KRB5_CONFIG: "/etc/k.conf", KRB5CCNAME: "FILE:/tmp/krb5cc_0", PGPASSFILE: "/root/.pgpass", SUDO_USER: "me", NODE_OPTIONS: "--x", NOTIFY_SOCKET: "/run/n" };
  const env = serverEnvironment(callers, { name: "postgres", uid: 100, gid: 100, home: "/var/lib/postgresql", shell: "/bin/bash" });
  assert.deepEqual(env.sort(), [
    "HOME=/var/lib/postgresql", "KRB5_CONFIG=/etc/k.conf", "LANG=C.UTF-8", "LC_ALL=C", "LOGNAME=postgres", "NOTIFY_SOCKET=/run/n", `PATH=${SERVER_PATH}`,
    "PGDATA=/d", "SHELL=/bin/bash", "TZ=UTC", "USER=postgres",
  ]);
  // Without a user switch: the caller's own environment, without Node's variables.
  assert.deepEqual(serverEnvironment({ HOME: "/home/me", NODE_OPTIONS: "x" }, undefined), ["HOME=/home/me"]);
});
