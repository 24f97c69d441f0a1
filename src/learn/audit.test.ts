// Parser units for audit2allow. The record lines are real (taken from test/fixtures/audit, which
// says how they were recorded) unless a test says it builds one.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AuditLogReader,
  analyzeAuditLog,
  auditPolicyDraft,
  decodeAuditString,
  decodeSeccompCode,
  formatPolicy,
  parseAuditLine,
  parseAuditLog,
  parseFields,
  processSelected,
  sortSyscallNames,
  type LineResult,
  type SeccompRecord,
} from "./audit.js";
import { writePolicyText } from "../policy/write.js";
import { assertRoundTrip, assertSettingsRoundTrip } from "../../test/support/policy-round-trip.js";

// dmesg (kernel log), a postgres process
const KERNEL = '[ 2158.676083] audit: type=1326 audit(1795880666.181:15137): auid=0 uid=101 gid=104 ses=7 pid=4617 comm="postgres" exe="/usr/lib/postgresql/15/bin/postgres" sig=0 arch=c000003e syscall=12 compat=0 ip=0x7fe7c62c8c47 code=0x7ffc0000';
const BODY = KERNEL.slice(KERNEL.indexOf("auid="));
// audit.log (auditd, ENRICHED: 0x1d and auditd's interpretation follow)
const AUDITLOG = 'type=SECCOMP msg=audit(1795880691.537:18363): auid=0 uid=101 gid=104 ses=8 pid=8310 comm="postgres" exe="/usr/lib/postgresql/15/bin/postgres" sig=0 arch=c000003e syscall=41 compat=0 ip=0x7f481c72d647 code=0x7ffc0000\x1dAUID="root" UID="postgres" GID="postgres" ARCH=x86_64 SYSCALL=unknown-syscall(-1)';
// seccomp-probe ("seccomp probe": comm and exe hex-encoded), one line per action, audit.log
const PROBE_EXE = "2F746D702F70675F736563636F6D702D70726F62652D3135593566432F736563636F6D702070726F6265";
const probe = (serial: number, pid: number, sig: number, arch: string, nr: number, compat: number, code: string) =>
  `type=SECCOMP msg=audit(1795880691.809:${serial}): auid=0 uid=0 gid=0 ses=8 pid=${pid} comm=736563636F6D702070726F6265 exe=${PROBE_EXE} sig=${sig} arch=${arch} syscall=${nr} compat=${compat} ip=0x7f7b7ab8d829 code=${code}`;
const PROBES = {
  killProcess: probe(20110, 8340, 31, "c000003e", 135, 0, "0x80000000"),
  killThread: probe(20112, 8341, 31, "c000003e", 63, 0, "0x0"),
  errno: probe(20114, 8342, 0, "c000003e", 101, 0, "0x50000"),
  trap: probe(20116, 8344, 0, "c000003e", 110, 0, "0x30000"),
  userNotif: probe(20117, 8345, 0, "c000003e", 79, 0, "0x7fc00000"),
  trace: probe(20118, 8346, 0, "c000003e", 99, 0, "0x7ff00000"),
  log: probe(20119, 8347, 0, "c000003e", 111, 0, "0x7ffc0000"),
  i386: probe(20120, 8348, 0, "40000003", 20, 1, "0x7ffc0000"),
  x32: probe(20121, 8348, 0, "c000003e", 1073741863, 0, "0x7ffc0000"),
};
// ausearch -i
const INTERPRETED = "type=SECCOMP msg=audit(11/28/26 15:44:51.809:20110) : auid=root uid=root gid=root ses=8 pid=8340 comm=seccomp probe exe=/tmp/pg_seccomp-probe-15Y5fC/seccomp probe sig=SIGSYS arch=x86_64 syscall=personality compat=0 ip=0x7f7b7ab8d829 code=kill ";
const INTERPRETED_PREAD = "type=SECCOMP msg=audit(11/28/26 15:44:51.665:19747) : auid=root uid=postgres gid=postgres ses=8 pid=8334 comm=postgres exe=/usr/lib/postgresql/15/bin/postgres sig=SIG0 arch=x86_64 syscall=pread compat=0 ip=0x7f481c7163d3 code=log ";
const INTERPRETED_I386 = "type=SECCOMP msg=audit(11/28/26 15:44:52.237:20120) : auid=root uid=root gid=root ses=8 pid=8348 comm=seccomp probe exe=/tmp/pg_seccomp-probe-15Y5fC/seccomp probe sig=SIG0 arch=i386 syscall=getpid compat=1 ip=0x55a75b1d647a code=log ";
const INTERPRETED_X32 = "type=SECCOMP msg=audit(11/28/26 15:44:52.237:20121) : auid=root uid=root gid=root ses=8 pid=8348 comm=seccomp probe exe=/tmp/pg_seccomp-probe-15Y5fC/seccomp probe sig=SIG0 arch=x86_64 syscall=unknown-syscall(1073741863) compat=0 ip=0x7f503d307829 code=log ";
// journald's audit transport, journalctl -o short-iso
const JOURNAL = '2026-11-28T15:44:26+0000 vm audit[4617]: SECCOMP auid=0 uid=101 gid=104 ses=7 pid=4617 comm="postgres" exe="/usr/lib/postgresql/15/bin/postgres" sig=0 arch=c000003e syscall=9 compat=0 ip=0x7fe7c62c9ca3 code=0x7ffc0000';

function record(line: string): Omit<SeccompRecord, "line"> {
  const r = parseAuditLine(line);
  assert.equal(r.kind, "seccomp", `not read as a SECCOMP record: ${line}\n${JSON.stringify(r)}`);
  return (r as Extract<LineResult, { kind: "seccomp" }>).record;
}

test("a kernel log record: every field", () => {
  assert.deepEqual(record(KERNEL), {
    form: "kernel",
    arch: "x86_64",
    tableArch: "x86_64",
    nr: 12,
    syscall: "brk",
    known: true,
    code: 0x7ffc0000,
    action: "LOG",
    timeMs: 1795880666181,
    serial: 15137,
    pid: 4617,
    uid: "101",
    auid: "0",
    ses: "7",
    sig: "0",
    ip: "0x7fe7c62c8c47",
    comm: "postgres",
    exe: "/usr/lib/postgresql/15/bin/postgres",
    compat: false,
  });
});

test("fields in any order, with SELinux subj= or AppArmor fields", () => {
  const base = record(KERNEL);
  const fields = BODY.split(" ");
  const orders = [
    [...fields].reverse(),
    [...fields.slice(5), ...fields.slice(0, 5)],
    [...fields.filter((f) => !f.startsWith("syscall=")), fields.find((f) => f.startsWith("syscall="))!],
  ];
  for (const o of orders) {
    assert.deepEqual(record(`audit: type=1326 audit(1795880666.181:15137): ${o.join(" ")}`), base, o.join(" "));
  }
  // SELinux (built: subj= comes after ses= in the kernel's audit_log_task)
  const selinux = KERNEL.replace(" pid=", " subj=system_u:system_r:postgresql_t:s0 pid=");
  assert.deepEqual(record(selinux), base);
  // AppArmor: a label with a space in it, unquoted
  const apparmor = KERNEL.replace(" pid=", " subj=/usr/lib/postgresql/15/bin/postgres (enforce) pid=");
  assert.deepEqual(record(apparmor), base);
  assert.equal(parseFields(apparmor.slice(apparmor.indexOf("auid="))).get("subj"), "/usr/lib/postgresql/15/bin/postgres (enforce)");
});

test("hex-encoded comm and exe are decoded", () => {
  const r = record(PROBES.log);
  assert.equal(r.comm, "seccomp probe");
  assert.equal(r.exe, "/tmp/pg_seccomp-probe-15Y5fC/seccomp probe");
  // The brief's example: comm=706F737467726573 is "postgres", and such a record is postgres's.
  const hexed = record(KERNEL.replace('comm="postgres"', "comm=706F737467726573"));
  assert.equal(hexed.comm, "postgres");
  assert.ok(processSelected(hexed, {}));
  assert.equal(decodeAuditString('"postgres"'), "postgres");
  assert.equal(decodeAuditString("706F737467726573"), "postgres");
  assert.equal(decodeAuditString("(null)"), "(null)");
  assert.equal(decodeAuditString("CAFE", true), "CAFE", "ausearch -i values are already decoded");
});

test("the same record behind every prefix the logs put before it", () => {
  const want = record(KERNEL);
  const kernelMsg = KERNEL.slice(KERNEL.indexOf("audit: "));
  const prefixes = [
    "", // the bare kernel message
    "[ 2158.676083] ", // dmesg
    "[Sat Nov 28 15:44:26 2026] ", // dmesg -T
    "5,15137,2158676083,-;", // /dev/kmsg
    "Nov 28 15:44:26 vm kernel: ", // syslog, journalctl's short format
    "Nov 28 15:44:26 vm kernel: [ 2158.676083] ", // older rsyslog with the printk time
    "2026-11-28T15:44:26.181083+00:00 vm kernel: ", // rsyslog RFC 3339
    "2026-11-28T15:44:26+0000 vm kernel: ", // journalctl -o short-iso
    "Nov 28 15:44:26.181083 vm kernel: ", // journalctl -o short-precise
    "[ 2158.676083] vm kernel: ", // journalctl -o short-monotonic
  ];
  for (const p of prefixes) assert.deepEqual(record(p + kernelMsg), want, JSON.stringify(p));
  // audit.log forms of the same record
  const auditBody = `type=SECCOMP msg=audit(1795880666.181:15137): ${BODY}`;
  const asAudit = { ...want, form: "audit" as const };
  assert.deepEqual(record(auditBody), asAudit);
  assert.deepEqual(record(`node=db1 ${auditBody}`), { ...asAudit, node: "db1" });
  assert.deepEqual(record(`Nov 28 15:44:26 vm audisp-syslog: ${auditBody}`), asAudit);
  assert.deepEqual(record(`type=UNKNOWN[1326] msg=audit(1795880666.181:15137): ${BODY}`), asAudit, "auditd that has no name for 1326");
  // journald's audit transport
  const j = record(JOURNAL);
  assert.equal(j.form, "journal");
  assert.equal(j.syscall, "mmap");
  assert.equal(j.pid, 4617);
  assert.equal(j.timeMs, undefined, "the text formats of the audit transport carry no audit stamp");
});

test("journalctl -o json, both transports", () => {
  const message = JOURNAL.slice(JOURNAL.indexOf("SECCOMP "));
  const audit = JSON.stringify({ _TRANSPORT: "audit", _AUDIT_TYPE: "1326", _AUDIT_TYPE_NAME: "SECCOMP", _AUDIT_ID: "17001", _SOURCE_REALTIME_TIMESTAMP: "1795880666181000", _PID: "4617", MESSAGE: message });
  const r = record(audit);
  assert.equal(r.form, "journal-json");
  assert.equal(r.syscall, "mmap");
  assert.equal(r.serial, 17001);
  assert.equal(r.timeMs, 1795880666181);
  const kernel = JSON.stringify({ _TRANSPORT: "kernel", MESSAGE: KERNEL.slice(KERNEL.indexOf("audit: ")) });
  assert.deepEqual(record(kernel), { ...record(KERNEL), form: "journal-json" });
  // MESSAGE as bytes (journald's form for a message that is not UTF-8)
  const bytes = JSON.stringify({ _TRANSPORT: "audit", _AUDIT_TYPE: "1326", MESSAGE: [...Buffer.from(message)] });
  assert.equal(record(bytes).syscall, "mmap");
  assert.deepEqual(parseAuditLine(JSON.stringify({ _TRANSPORT: "audit", _AUDIT_TYPE: "1300", _AUDIT_TYPE_NAME: "SYSCALL", MESSAGE: "SYSCALL arch=c000003e syscall=1" })), { kind: "other-record", type: "SYSCALL" });
  assert.deepEqual(parseAuditLine(JSON.stringify({ MESSAGE: "Started Session 3 of User root." })), { kind: "noise" });
});

test("each seccomp return code", () => {
  const cases: Array<[number, string, number?]> = [
    [0x7ffc0000, "LOG"],
    [0x80000000, "KILL_PROCESS"],
    [0x00000000, "KILL_THREAD"],
    [0x00050000, "ERRNO"],
    [0x00050001, "ERRNO(1)", 1],
    [0x00050026, "ERRNO(38)", 38],
    [0x7fc00000, "USER_NOTIF"],
    [0x00030000, "TRAP"],
    [0x00030007, "TRAP(7)"],
    [0x7ff00000, "TRACE"],
    [0x7fff0000, "ALLOW"],
    [0x12340000, "UNKNOWN(0x12340000)"],
  ];
  for (const [code, action, errno] of cases) {
    assert.deepEqual(decodeSeccompCode(code), errno === undefined ? { action } : { action, errno }, code.toString(16));
  }
  // Real records: the kernel logs the action without its data (ERRNO, not ERRNO(1)).
  const actions = Object.fromEntries(Object.entries(PROBES).map(([k, l]) => [k, record(l).action]));
  assert.deepEqual(actions, {
    killProcess: "KILL_PROCESS", killThread: "KILL_THREAD", errno: "ERRNO", trap: "TRAP", userNotif: "USER_NOTIF",
    trace: "TRACE", log: "LOG", i386: "LOG", x32: "LOG",
  });
  assert.equal(record(PROBES.killProcess).sig, "31");
  assert.equal(record(PROBES.killProcess).code, 0x80000000);
  assert.equal(record(PROBES.killThread).code, 0);
  // ausearch -i's names
  const interp = (code: string) => record(INTERPRETED.replace("code=kill", `code=${code}`)).action;
  assert.equal(interp("kill"), "KILL", "ausearch -i prints both kills as kill");
  assert.equal(interp("errno"), "ERRNO");
  assert.equal(interp("trap"), "TRAP");
  assert.equal(interp("user-notify"), "USER_NOTIF");
  assert.equal(interp("trace"), "TRACE");
  assert.equal(interp("log"), "LOG");
  assert.equal(interp("allow"), "ALLOW");
  assert.equal(interp("unknown-seccomp-code(0x7ffc0000)"), "LOG");
  assert.equal(interp("constructor"), "UNKNOWN(constructor)", "no prototype lookups");
  assert.deepEqual([record(INTERPRETED.replace("syscall=personality", "syscall=constructor")).known], [false]);
  assert.equal(record(KERNEL.replace(" code=0x7ffc0000", "")).action, "UNKNOWN", "a record without code= is still a record");
});

test("i386 and x32 records: another ABI, kept as #nr, never listed", () => {
  const i386 = record(PROBES.i386);
  assert.equal(i386.arch, "i386");
  assert.equal(i386.tableArch, undefined);
  assert.equal(i386.nr, 20);
  assert.equal(i386.syscall, "#20", "20 is getpid on i386, writev on x86_64: no x86_64 name for it");
  assert.equal(i386.known, false);
  assert.equal(i386.compat, true);
  const x32 = record(PROBES.x32);
  assert.equal(x32.arch, "x32");
  assert.equal(x32.nr, 1073741863);
  assert.equal(x32.syscall, "#1073741863");
  assert.equal(x32.known, false);
  // ausearch -i
  const ii = record(INTERPRETED_I386);
  assert.deepEqual([ii.arch, ii.syscall, ii.known, ii.nr], ["i386", "getpid", false, undefined]);
  const ix = record(INTERPRETED_X32);
  assert.deepEqual([ix.arch, ix.syscall, ix.known, ix.nr], ["x32", "#1073741863", false, 1073741863]);
  // In a report: counted, left out of the list.
  const rep = analyzeAuditLog([PROBES.log, PROBES.i386, PROBES.x32, INTERPRETED_I386].join("\n"), { all: true });
  assert.deepEqual(rep.allow, { x86_64: ["getpgrp"] });
  assert.equal(rep.counts.foreignAbiRecords, 3);
  assert.deepEqual(rep.notListed.map((n) => `${n.arch} ${n.syscall}`).sort(), ["i386 #20", "i386 getpid", "x32 #1073741863"]);
});

test("other arches and unknown numbers", () => {
  // Built records: an aarch64 server (arch=c00000b7; 56 is openat there), numbers past the table.
  const aarch64 = record(KERNEL.replace("arch=c000003e syscall=12", "arch=c00000b7 syscall=56"));
  assert.deepEqual([aarch64.arch, aarch64.syscall, aarch64.nr, aarch64.known], ["aarch64", "openat", 56, true]);
  const unknown = record(KERNEL.replace("syscall=12 ", "syscall=999 "));
  assert.deepEqual([unknown.arch, unknown.tableArch, unknown.syscall, unknown.known], ["x86_64", "x86_64", "#999", false]);
  assert.equal(record(KERNEL.replace("arch=c000003e", "arch=c00000f3")).arch, "riscv64");
  assert.equal(record(KERNEL.replace("arch=c000003e", "arch=deadbeef")).arch, "0xdeadbeef");
  const rep = analyzeAuditLog([KERNEL, KERNEL.replace("syscall=12 ", "syscall=999 ")].join("\n"));
  assert.deepEqual(rep.allow, { x86_64: ["brk"] });
  assert.equal(rep.counts.unknownSyscallRecords, 1);
  assert.deepEqual(rep.notListed, [{ arch: "x86_64", syscall: "#999", records: 1 }]);
});

test("ausearch -i: names, a local date, values with spaces, auparse's spellings", () => {
  const r = record(INTERPRETED);
  assert.equal(r.form, "audit-interpreted");
  assert.equal(r.timeText, "11/28/26 15:44:51.809");
  assert.equal(r.timeMs, undefined);
  assert.equal(r.serial, 20110);
  assert.equal(r.comm, "seccomp probe");
  assert.equal(r.exe, "/tmp/pg_seccomp-probe-15Y5fC/seccomp probe");
  assert.deepEqual([r.arch, r.syscall, r.nr, r.known], ["x86_64", "personality", 135, true]);
  assert.equal(r.auid, "root");
  assert.equal(r.sig, "SIGSYS");
  const pread = record(INTERPRETED_PREAD);
  assert.deepEqual([pread.syscall, pread.nr, pread.known], ["pread64", 17, true], "auparse says pread");
});

test("ENRICHED audit.log: auditd's interpretation after 0x1d is ignored", () => {
  const r = record(AUDITLOG);
  assert.equal(r.syscall, "socket");
  assert.equal(r.nr, 41);
  assert.equal(r.form, "audit");
  assert.equal(r.uid, "101");
});

test("malformed lines, other records and noise", () => {
  const kind = (l: string) => parseAuditLine(l).kind;
  const cut = AUDITLOG.slice(0, AUDITLOG.indexOf(" sysc") + 5);
  const malformed = [
    cut, // cut before syscall=
    AUDITLOG.slice(0, AUDITLOG.indexOf(".") + 2), // cut in the header
    KERNEL.replace(/ arch=\S+/, ""), // no arch=
    KERNEL.replace("syscall=12", "syscall=x41"), // not a number in a raw record
    KERNEL.replace("syscall=12", "syscall=12a"),
    INTERPRETED.replace("syscall=personality", "syscall=Personality!"),
    BODY, // a body whose header was lost
    '{"_TRANSPORT":"audit","MESSAGE":"SECCOMP auid=0 uid=0 gid=0 ses=10 pid=11073 comm=7365 sig=31 arch=c000003e syscall=135 compat=0', // JSON cut short
    "type=SECCOMP msg=audit(yesterday:12): arch=c000003e syscall=1 code=0x7ffc0000", // unreadable stamp
  ];
  for (const l of malformed) assert.equal(kind(l), "malformed", l);
  const other: Array<[string, string]> = [
    ["type=SYSCALL msg=audit(1795880689.193:17624): arch=c000003e syscall=44 success=yes exit=60 a0=3 a1=7fffa15fdbc0 a2=3c a3=0 items=0 ppid=7276 pid=7650 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"auditctl\" exe=\"/usr/sbin/auditctl\" key=(null)", "SYSCALL"],
    ["[ 2189.793270] audit: type=1300 audit(1795880697.301:20123): arch=c000003e syscall=44 success=yes exit=60", "1300"],
    ["[ 2189.793263] audit: type=1305 audit(1795880697.301:20123): op=set audit_backlog_limit=64 old=8192 auid=4294967295 ses=4294967295 res=1", "1305"],
    ["2026-11-28T15:47:28+0000 vm audit[11073]: ANOM_ABEND auid=0 uid=0 gid=0 ses=10 pid=11073 sig=31 res=1", "ANOM_ABEND"],
  ];
  for (const [l, type] of other) assert.deepEqual(parseAuditLine(l), { kind: "other-record", type }, l);
  const noise = ["", "   ", "----", "time->Sat Nov 28 15:44:51 2026", "<no matches>", "[    0.000000] Linux version 6.18.44", "[    0.123456] audit: initializing netlink subsys (disabled)", "[ 1575.781433] kauditd_printk_skb: 1 callbacks suppressed", "\u00ff\u00fe garbage"];
  for (const l of noise) assert.equal(kind(l), "noise", JSON.stringify(l));
  assert.equal(kind(KERNEL + "\r"), "seccomp", "CRLF");
});

test("the reader: chunks of any size, bytes split inside a character, counts and line numbers", () => {
  const text = ["----", "time->Sat Nov 28 15:44:51 2026", AUDITLOG, "", cutLine(), KERNEL.replace('comm="postgres"', "comm=706F737467726573 "), "type=DAEMON_END msg=audit(1795880695.302:3344): op=terminate auid=0 uid=0 ses=4294967295 pid=7276 res=success", PROBES.killProcess, "é ünïcode"].join("\r\n");
  function cutLine() {
    return AUDITLOG.slice(0, 60);
  }
  const whole = parseAuditLog(text);
  assert.equal(whole.counts.lines, 9);
  assert.equal(whole.counts.seccompRecords, 3);
  assert.equal(whole.counts.malformed, 1);
  assert.deepEqual(whole.counts.malformedLines, [5]);
  assert.equal(whole.counts.otherRecords, 1);
  assert.deepEqual(whole.counts.otherRecordTypes, { DAEMON_END: 1 });
  assert.equal(whole.counts.otherLines, 4);
  assert.deepEqual(whole.records.map((r) => r.line), [3, 6, 8]);
  assert.deepEqual(whole.counts.forms, { audit: 2, kernel: 1 });
  const bytes = Buffer.from(text + "\n", "utf8");
  for (const size of [1, 2, 3, 7, 64, 4096]) {
    const records: SeccompRecord[] = [];
    const reader = new AuditLogReader((r) => records.push(r));
    for (let i = 0; i < bytes.length; i += size) reader.push(bytes.subarray(i, i + size));
    const counts = reader.end();
    assert.deepEqual(records, whole.records, `chunks of ${size}`);
    assert.deepEqual(counts, whole.counts, `chunks of ${size}`);
  }
  // Strings in pieces, and a last line without a newline.
  const reader = new AuditLogReader(() => {});
  reader.push(KERNEL.slice(0, 40));
  reader.push(KERNEL.slice(40));
  assert.equal(reader.end().seccompRecords, 1);
});

test("sorted as the seed's get_syscalls.sh printed its lists (en_US collation)", () => {
  // The seed's two learned lists, verbatim.
  const seedGlobal = "accept,access,bind,brk,chmod,clone,close,connect,dup,epoll_create1,epoll_ctl,epoll_wait,exit_group,fadvise64,fallocate,fcntl,fdatasync,fstat,fsync,ftruncate,futex,getdents,getegid,geteuid,getgid,getpeername,getpid,getppid,getrandom,getrusage,getsockname,getsockopt,getuid,ioctl,kill,link,listen,lseek,lstat,mkdir,mmap,mprotect,mremap,munmap,openat,pipe,poll,prctl,pread64,prlimit64,pwrite64,read,readlink,recvfrom,recvmsg,rename,rmdir,rt_sigaction,rt_sigprocmask,rt_sigreturn,seccomp,select,sendto,setitimer,set_robust_list,setsid,setsockopt,shmat,shmctl,shmdt,shmget,shutdown,socket,stat,statfs,symlink,sync_file_range,sysinfo,umask,uname,unlink,utime,wait4,write";
  const seedSession = "access,brk,chmod,close,connect,epoll_create1,epoll_ctl,epoll_wait,exit_group,fadvise64,fallocate,fcntl,fdatasync,fstat,fsync,ftruncate,futex,getdents,getegid,geteuid,getgid,getpeername,getpid,getrandom,getrusage,getsockname,getsockopt,getuid,ioctl,kill,link,lseek,lstat,mkdir,mmap,mprotect,mremap,munmap,openat,poll,pread64,pwrite64,read,readlink,recvfrom,recvmsg,rename,rmdir,rt_sigaction,rt_sigprocmask,rt_sigreturn,select,sendto,setitimer,setsockopt,shutdown,socket,stat,symlink,sync_file_range,sysinfo,umask,uname,unlink,utime,write";
  for (const list of [seedGlobal, seedSession]) {
    const names = list.split(",");
    const shuffled = names.map((n, i) => [(i * 7919) % names.length, n] as const).sort((a, b) => a[0] - b[0]).map(([, n]) => n);
    assert.deepEqual(sortSyscallNames([...shuffled, ...shuffled.slice(0, 5)]), names);
  }
  assert.deepEqual(sortSyscallNames(["set_tid_address", "setsid", "set_robust_list", "setitimer", "wait4", "waitid", "epoll_pwait2", "epoll_pwait"]), [
    "epoll_pwait", "epoll_pwait2", "setitimer", "set_robust_list", "setsid", "set_tid_address", "wait4", "waitid",
  ]);
});

test("which processes are postgres's, and --comm/--exe matching", () => {
  const p = (comm?: string, exe?: string) => ({ ...(comm !== undefined ? { comm } : {}), ...(exe !== undefined ? { exe } : {}) });
  assert.ok(processSelected(p("postgres", "/usr/lib/postgresql/15/bin/postgres"), {}));
  assert.ok(processSelected(p("postgres"), {}));
  assert.ok(processSelected(p("postmaster", "/usr/lib/postgresql/15/bin/postmaster"), {}));
  assert.ok(processSelected(p("bgworker: x", "/opt/pg/bin/postgres"), {}), "an exe named postgres whatever its comm");
  assert.ok(processSelected(p("pg", "/usr/lib/postgresql/15/bin/postgres (deleted)"), {}), "a binary replaced by an upgrade");
  assert.ok(!processSelected(p("node", "/usr/bin/node"), {}));
  assert.ok(!processSelected(p("sh", "/usr/bin/dash"), {}));
  assert.ok(!processSelected(p("postgres_fdw_x", "/usr/bin/postgresx"), {}));
  assert.ok(processSelected(p("sh", "/usr/bin/dash"), { all: true }));
  // --comm replaces the postgres rule; names longer than the kernel keeps (15) match truncated.
  assert.ok(processSelected(p("sh"), { comm: ["sh"] }));
  assert.ok(!processSelected(p("postgres"), { comm: ["sh"] }));
  assert.ok(processSelected(p("pg_basebackup_w"), { comm: ["pg_basebackup_worker"] }));
  // --exe: a path, or a file name
  assert.ok(processSelected(p("x", "/usr/bin/dash"), { exe: ["/usr/bin/dash"] }));
  assert.ok(processSelected(p("x", "/usr/bin/dash"), { exe: ["dash"] }));
  assert.ok(!processSelected(p("x", "/usr/bin/dash"), { exe: ["/bin/dash"] }));
  assert.ok(!processSelected(p("x", "/usr/bin/bash"), { exe: ["ash"] }));
  assert.ok(processSelected(p("cp", "/usr/bin/cp"), { comm: ["sh"], exe: ["cp"] }), "either matches");
});

test("the report: counts, time range, processes, several arches in a policy snippet", () => {
  const aarch = KERNEL.replace("arch=c000003e syscall=12", "arch=c00000b7 syscall=56").replace("1795880666.181", "1795880667.250");
  const text = [KERNEL, JOURNAL, AUDITLOG, aarch, PROBES.log, "garbage arch=1 syscall=2 x"].join("\n");
  const rep = analyzeAuditLog(text, {}, "mixed input");
  assert.equal(rep.counts.lines, 6);
  assert.equal(rep.counts.seccompRecords, 5);
  assert.equal(rep.counts.kept, 4);
  assert.equal(rep.counts.filteredOutByProcess, 1);
  assert.equal(rep.counts.malformedLines, 1);
  assert.deepEqual(rep.allow, { x86_64: ["brk", "mmap", "socket"], aarch64: ["openat"] });
  assert.deepEqual(rep.timeRange, { first: "2026-11-28T15:44:26.181Z", last: "2026-11-28T15:44:51.537Z" });
  assert.deepEqual(rep.processesSeen.map((p) => [p.comm, p.records, p.pids]), [["postgres", 4, 2]]);
  assert.deepEqual(rep.otherProcesses.map((p) => [p.comm, p.records]), [["seccomp probe", 1]]);
  const policy = formatPolicy(rep);
  const active = policy.split("\n").filter((l) => l.startsWith("global_syscall_allow"));
  assert.deepEqual(active, ["global_syscall_allow = 'brk, mmap, socket'"]);
  assert.match(policy, /^# global_syscall_allow = 'openat'$/m);
  assert.match(policy, /^# aarch64: 1 syscall in 1 record$/m);
  assert.match(policy, /^# source: mixed input$/m);
  // --arch keeps one arch
  const only = analyzeAuditLog(text, { arch: "aarch64" });
  assert.deepEqual(only.allow, { aarch64: ["openat"] });
  assert.equal(only.counts.filteredOutByArch, 3);
});

test("the policy snippet is a draft written by policy/write.ts: it reads back to its settings; a comm with a line break stays a comment", () => {
  // A process may name itself anything (prctl PR_SET_NAME): audit hex-encodes the line break.
  const evilComm = Buffer.from("pg\nglobal_syscall_default = 'allow'").toString("hex").toUpperCase();
  const evil = KERNEL.replace('comm="postgres"', `comm=${evilComm}`);
  const aarch = KERNEL.replace("arch=c000003e syscall=12", "arch=c00000b7 syscall=56");
  for (const text of [[KERNEL, evil, AUDITLOG].join("\n"), [KERNEL, aarch].join("\n"), "no records here"]) {
    const rep = analyzeAuditLog(text, {}, "input");
    const draft = auditPolicyDraft(rep);
    assert.equal(formatPolicy(rep), writePolicyText(draft));
    assertSettingsRoundTrip(draft);
    assert.deepEqual(draft.settings.filter((s) => !s.commentedOut).map((s) => s.name), ["global_syscall_allow"], "nothing in a comment sets anything");
    // The snippet in a policy with a default: the effective table of what it says.
    assertRoundTrip({ ...draft, settings: [{ name: "global_syscall_default", value: "kill" }, ...draft.settings] }, "x86_64");
  }
  assert.ok(analyzeAuditLog([KERNEL, evil].join("\n"), {}).processesSeen.some((p) => p.comm.includes("\n")), "the hostile comm is in the report");
});
