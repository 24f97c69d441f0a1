// systemd's syscall groups ("@system-service", "@file-system", ...), with systemd's names,
// descriptions and members, so that policies can be written the way SystemCallFilter= is.
//
// Data: syscall_filter_sets[] of systemd's src/shared/seccomp-util.c, systemd main as of
// late 2025 (post-v258: it has @sandbox inside @default (PR #34552), open_tree in
// @file-system (PR #38060), file_getattr/file_setattr/open_tree_attr from Linux 6.17/6.15).
// Member lists are kept as systemd writes them: names of every architecture systemd supports
// (many exist on neither x86_64 nor aarch64; expandGroup() reports those as `missing` and
// skips them, as systemd does) and nested "@group" references, expanded recursively.
//
// "@known" is special: systemd defines it as "@obsolete" plus every syscall name of the
// kernel; here it is "@obsolete" plus every name of our x86_64 and aarch64 tables, so that
// expandGroup("@known", arch) is exactly that arch's table.
//
// Pure: no I/O.

import { ARCHES, allSyscalls, suggestNames, syscallNumber, type Arch } from "./index.js";

export interface GroupInfo {
  /** Group name including the leading "@", e.g. "@file-system". */
  readonly name: string;
  /** systemd's one-line help text. */
  readonly description: string;
  /** Members as written: syscall names (of any arch) and nested "@group" references. */
  readonly members: readonly string[];
}

export interface GroupExpansion {
  /** Syscalls of the group (nested groups expanded) that exist on the arch: sorted, deduplicated. */
  syscalls: string[];
  /** Member names that do not exist on the arch (skipped, as systemd does): sorted, deduplicated. */
  missing: string[];
}

export type GroupResolveResult = { ok: true; info: GroupInfo } | { ok: false; message: string };

const w = (s: string): readonly string[] => Object.freeze(s.trim().split(/\s+/));

/** systemd's groups in systemd's order (@default first, @known last, the rest alphabetical). */
const SYSTEMD_GROUPS: readonly GroupInfo[] = [
  {
    name: "@default",
    description: "System calls that are always permitted",
    members: w(`
      @sandbox arch_prctl brk cacheflush clock_getres clock_getres_time64 clock_gettime
      clock_gettime64 clock_nanosleep clock_nanosleep_time64 execve exit exit_group futex
      futex_time64 futex_waitv get_robust_list get_thread_area getegid getegid32 geteuid
      geteuid32 getgid getgid32 getgroups getgroups32 getpgid getpgrp getpid getppid getrandom
      getresgid getresgid32 getresuid getresuid32 getrlimit getsid gettid gettimeofday getuid
      getuid32 lsm_get_self_attr lsm_list_modules membarrier mmap mmap2 mprotect mseal munmap
      nanosleep pause prlimit64 restart_syscall riscv_flush_icache riscv_hwprobe rseq
      rt_sigreturn sched_getaffinity sched_yield set_robust_list set_thread_area
      set_tid_address set_tls sigreturn time ugetrlimit uretprobe`),
  },
  {
    name: "@aio",
    description: "Asynchronous IO",
    members: w(`
      io_cancel io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup io_submit
      io_uring_enter io_uring_register io_uring_setup`),
  },
  {
    name: "@basic-io",
    description: "Basic IO",
    members: w(`
      _llseek close close_range dup dup2 dup3 llseek lseek pread64 preadv preadv2 pwrite64
      pwritev pwritev2 read readv write writev`),
  },
  {
    name: "@chown",
    description: "Change ownership of files and directories",
    members: w(`chown chown32 fchown fchown32 fchownat lchown lchown32`),
  },
  {
    name: "@clock",
    description: "Change the system time",
    members: w(`adjtimex clock_adjtime clock_adjtime64 clock_settime clock_settime64 settimeofday`),
  },
  {
    name: "@cpu-emulation",
    description: "System calls for CPU emulation functionality",
    members: w(`modify_ldt subpage_prot switch_endian vm86 vm86old`),
  },
  {
    name: "@debug",
    description: "Debugging, performance monitoring and tracing functionality",
    members: w(`lookup_dcookie perf_event_open pidfd_getfd ptrace rtas s390_runtime_instr sys_debug_setcontext`),
  },
  {
    name: "@file-system",
    description: "File system operations",
    members: w(`
      access chdir chmod close creat faccessat faccessat2 fallocate fchdir fchmod fchmodat
      fchmodat2 fcntl fcntl64 fgetxattr file_getattr file_setattr flistxattr fremovexattr
      fsetxattr fstat fstat64 fstatat fstatat64 fstatfs fstatfs64 ftruncate ftruncate64
      futimesat getcwd getdents getdents64 getxattr getxattrat inotify_add_watch inotify_init
      inotify_init1 inotify_rm_watch lgetxattr link linkat listmount listxattr listxattrat
      llistxattr lremovexattr lsetxattr lstat lstat64 mkdir mkdirat mknod mknodat newfstat
      newfstatat oldfstat oldlstat oldstat open open_tree openat openat2 readlink readlinkat
      removexattr removexattrat rename renameat renameat2 rmdir setxattr setxattrat stat stat64
      statfs statfs64 statmount statx symlink symlinkat truncate truncate64 unlink unlinkat utime
      utimensat utimensat_time64 utimes`),
  },
  {
    name: "@io-event",
    description: "Event loop system calls",
    members: w(`
      _newselect epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2
      epoll_wait epoll_wait_old eventfd eventfd2 poll ppoll ppoll_time64 pselect6
      pselect6_time64 select`),
  },
  {
    name: "@ipc",
    description: "SysV IPC, POSIX Message Queues or other IPC",
    members: w(`
      ipc memfd_create mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
      mq_timedsend mq_timedsend_time64 mq_unlink msgctl msgget msgrcv msgsnd pipe pipe2
      process_madvise process_vm_readv process_vm_writev semctl semget semop semtimedop
      semtimedop_time64 shmat shmctl shmdt shmget`),
  },
  {
    name: "@keyring",
    description: "Kernel keyring access",
    members: w(`add_key keyctl request_key`),
  },
  {
    name: "@memlock",
    description: "Memory locking control",
    members: w(`mlock mlock2 mlockall munlock munlockall`),
  },
  {
    name: "@module",
    description: "Loading and unloading of kernel modules",
    members: w(`delete_module finit_module init_module`),
  },
  {
    name: "@mount",
    description: "Mounting and unmounting of file systems",
    members: w(`
      chroot fsconfig fsmount fsopen fspick mount mount_setattr move_mount open_tree_attr
      pivot_root umount umount2`),
  },
  {
    name: "@network-io",
    description: "Network or Unix socket IO, should not be needed if not network facing",
    members: w(`
      accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom
      recvmmsg recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown socket
      socketcall socketpair`),
  },
  {
    name: "@obsolete",
    description: "Unusual, obsolete or unimplemented system calls",
    members: w(`
      _sysctl afs_syscall bdflush break create_module ftime get_kernel_syms getpmsg gtty idle
      lock mpx prof profil putpmsg query_module security sgetmask ssetmask stime stty sysfs
      tuxcall ulimit uselib ustat vserver`),
  },
  {
    name: "@pkey",
    description: "System calls used for memory protection keys",
    members: w(`pkey_alloc pkey_free pkey_mprotect`),
  },
  {
    name: "@privileged",
    description: "All system calls which need super-user capabilities",
    members: w(`
      @chown @clock @module @raw-io @reboot @swap _sysctl acct bpf capset chroot fanotify_init
      fanotify_mark nfsservctl open_by_handle_at pivot_root quotactl quotactl_fd setdomainname
      setfsuid setfsuid32 setgroups setgroups32 sethostname setresuid setresuid32 setreuid
      setreuid32 setuid setuid32 vhangup`),
  },
  {
    name: "@process",
    description: "Process control, execution, namespacing operations",
    members: w(`
      capget clone clone3 execveat fork getrusage kill pidfd_open pidfd_send_signal prctl
      rt_sigqueueinfo rt_tgsigqueueinfo setns swapcontext tgkill times tkill unshare vfork wait4
      waitid waitpid`),
  },
  {
    name: "@raw-io",
    description: "Raw I/O port access",
    members: w(`
      ioperm iopl pciconfig_iobase pciconfig_read pciconfig_write s390_pci_mmio_read
      s390_pci_mmio_write`),
  },
  {
    name: "@reboot",
    description: "Reboot and reboot preparation/kexec",
    members: w(`kexec_file_load kexec_load reboot`),
  },
  {
    name: "@resources",
    description: "Alter resource settings",
    members: w(`
      ioprio_set mbind migrate_pages move_pages nice sched_setaffinity sched_setattr
      sched_setparam sched_setscheduler set_mempolicy set_mempolicy_home_node setpriority
      setrlimit`),
  },
  {
    name: "@sandbox",
    description: "Sandbox functionality",
    members: w(`landlock_add_rule landlock_create_ruleset landlock_restrict_self seccomp`),
  },
  {
    name: "@setuid",
    description: "Operations for changing user/group credentials",
    members: w(`
      setgid setgid32 setgroups setgroups32 setregid setregid32 setresgid setresgid32 setresuid
      setresuid32 setreuid setreuid32 setuid setuid32`),
  },
  {
    name: "@signal",
    description: "Process signal handling",
    members: w(`
      rt_sigaction rt_sigpending rt_sigprocmask rt_sigsuspend rt_sigtimedwait
      rt_sigtimedwait_time64 sigaction sigaltstack signal signalfd signalfd4 sigpending
      sigprocmask sigsuspend`),
  },
  {
    name: "@swap",
    description: "Enable/disable swap devices",
    members: w(`swapoff swapon`),
  },
  {
    name: "@sync",
    description: "Synchronize files and memory to storage",
    members: w(`fdatasync fsync msync sync sync_file_range sync_file_range2 syncfs`),
  },
  {
    name: "@system-service",
    description: "General system service operations",
    members: w(`
      @aio @basic-io @chown @default @file-system @io-event @ipc @keyring @memlock @network-io
      @process @resources @setuid @signal @sync @timer arm_fadvise64_64 capget capset
      copy_file_range fadvise64 fadvise64_64 flock get_mempolicy getcpu getpriority ioctl
      ioprio_get kcmp madvise mremap name_to_handle_at oldolduname olduname personality
      readahead readdir remap_file_pages sched_get_priority_max sched_get_priority_min
      sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval
      sched_rr_get_interval_time64 sched_yield sendfile sendfile64 setfsgid setfsgid32 setfsuid
      setfsuid32 setpgid setsid splice sysinfo tee umask uname userfaultfd vmsplice`),
  },
  {
    name: "@timer",
    description: "Schedule operations by time",
    members: w(`
      alarm getitimer setitimer timer_create timer_delete timer_getoverrun timer_gettime
      timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
      timerfd_gettime64 timerfd_settime timerfd_settime64 times`),
  },
  {
    name: "@known",
    description: "All known syscalls declared in the kernel",
    // "@obsolete" + the names of every arch table, filled in below.
    members: w(`@obsolete`),
  },
];

/**
 * Member names of systemd's groups that exist on neither x86_64 nor aarch64, and why.
 * They are kept in the member lists (systemd lists them for its other architectures) and
 * land in `missing` when a group is expanded.
 */
export const NON_NATIVE_MEMBERS: Readonly<Record<string, string>> = Object.freeze(
  Object.fromEntries([
    ...w(`
      _llseek llseek _newselect mmap2 fcntl64 stat64 lstat64 fstat64 fstatat64 statfs64 fstatfs64
      truncate64 ftruncate64 sendfile64 fadvise64_64 ugetrlimit waitpid umount ipc socketcall
      recv send signal sigaction sigpending sigprocmask sigsuspend sigreturn sgetmask ssetmask
      nice stime oldstat oldlstat oldfstat olduname oldolduname readdir vm86 vm86old
      getuid32 geteuid32 getgid32 getegid32 getgroups32 getresuid32 getresgid32 setuid32
      setgid32 setreuid32 setregid32 setresuid32 setresgid32 setfsuid32 setfsgid32 setgroups32
      chown32 fchown32 lchown32`).map((n) => [n, "32-bit ABI only (i386, arm and other 32-bit arches)"]),
    ...w(`
      clock_gettime64 clock_settime64 clock_adjtime64 clock_getres_time64 clock_nanosleep_time64
      timer_gettime64 timer_settime64 timerfd_gettime64 timerfd_settime64 utimensat_time64
      pselect6_time64 ppoll_time64 io_pgetevents_time64 recvmmsg_time64 mq_timedsend_time64
      mq_timedreceive_time64 semtimedop_time64 rt_sigtimedwait_time64 futex_time64
      sched_rr_get_interval_time64`).map((n) => [n, "32-bit ABI only (64-bit time_t variant for y2038)"]),
    ...w(`cacheflush set_tls arm_fadvise64_64 sync_file_range2`).map((n) => [n, "arm (32-bit) or other arch-specific"]),
    ...w(`riscv_flush_icache riscv_hwprobe`).map((n) => [n, "riscv only"]),
    ...w(`rtas subpage_prot switch_endian swapcontext sys_debug_setcontext`).map((n) => [n, "powerpc only"]),
    ...w(`s390_runtime_instr s390_pci_mmio_read s390_pci_mmio_write`).map((n) => [n, "s390 only"]),
    ...w(`pciconfig_iobase pciconfig_read pciconfig_write`).map((n) => [n, "alpha/powerpc/sparc only"]),
    ...w(`break ftime gtty idle lock mpx prof profil stty ulimit bdflush`).map((n) => [
      n,
      "obsolete: never implemented or removed; no current 64-bit kernel table has it",
    ]),
    ...w(`fstatat newfstat`).map((n) => [n, "alternative spelling of newfstatat/fstat on generic-table arches"]),
  ]),
);

// ---------------------------------------------------------------------------------------------

let knownMembers: readonly string[] | undefined;
function knownGroupMembers(): readonly string[] {
  if (knownMembers === undefined) {
    const names = new Set<string>();
    for (const arch of ARCHES) for (const e of allSyscalls(arch)) names.add(e.name);
    knownMembers = Object.freeze(["@obsolete", ...[...names].sort()]);
  }
  return knownMembers;
}

const GROUPS: ReadonlyMap<string, GroupInfo> = new Map(SYSTEMD_GROUPS.map((g) => [g.name, g]));
const GROUP_NAMES: readonly string[] = Object.freeze(SYSTEMD_GROUPS.map((g) => g.name));

/** Names of all groups, with the leading "@", in systemd's order (@default first, @known last). */
export function groupNames(): string[] {
  return [...GROUP_NAMES];
}

/** A group's description and members as written (nested "@group" references unexpanded). */
export function groupInfo(name: string): GroupInfo | undefined {
  const g = GROUPS.get(name);
  if (g === undefined) return undefined;
  if (g.name === "@known") return Object.freeze({ ...g, members: knownGroupMembers() });
  return g;
}

/** Looks up a group, with a did-you-mean message for unknown names. */
export function resolveGroup(name: string): GroupResolveResult {
  const info = groupInfo(name);
  if (info !== undefined) return { ok: true, info };
  if (!name.startsWith("@") && groupInfo(`@${name}`) !== undefined) {
    return { ok: false, message: `unknown syscall group "${name}"; did you mean "@${name}"? (group names start with "@")` };
  }
  const maybe = suggestNames(GROUP_NAMES, name.startsWith("@") ? name : `@${name}`);
  if (maybe.length > 0) {
    return { ok: false, message: `unknown syscall group "${name}"; did you mean ${maybe.map((m) => `"${m}"`).join(" or ")}?` };
  }
  return { ok: false, message: `unknown syscall group "${name}" (known groups: ${GROUP_NAMES.join(", ")})` };
}

const expansionCache = new Map<string, { syscalls: readonly string[]; missing: readonly string[] }>();

function expandInto(name: string, arch: Arch, present: Set<string>, missing: Set<string>, stack: string[]): void {
  const info = groupInfo(name);
  if (info === undefined) {
    const r = resolveGroup(name);
    throw new Error(r.ok ? `unknown syscall group "${name}"` : r.message);
  }
  if (stack.includes(name)) throw new Error(`syscall group cycle: ${[...stack, name].join(" -> ")}`);
  stack.push(name);
  for (const member of info.members) {
    if (member.startsWith("@")) expandInto(member, arch, present, missing, stack);
    else if (syscallNumber(arch, member) !== undefined) present.add(member);
    else missing.add(member);
  }
  stack.pop();
}

/**
 * The syscalls of a group on one arch, nested groups expanded recursively. Members that do not
 * exist on the arch are skipped and listed in `missing`. Throws for an unknown group name
 * (with the same did-you-mean message as resolveGroup).
 */
export function expandGroup(name: string, arch: Arch): GroupExpansion {
  const key = `${arch}\0${name}`;
  let cached = expansionCache.get(key);
  if (cached === undefined) {
    const present = new Set<string>();
    const missing = new Set<string>();
    expandInto(name, arch, present, missing, []);
    cached = { syscalls: Object.freeze([...present].sort()), missing: Object.freeze([...missing].sort()) };
    expansionCache.set(key, cached);
  }
  return { syscalls: [...cached.syscalls], missing: [...cached.missing] };
}
