// The kernel's audit records as journald reads them: a NETLINK_AUDIT socket bound to the
// multicast read group AUDIT_NLGRP_READLOG. Every record the audit subsystem emits (seccomp's
// type 1326 among them) is multicast there, complete: /dev/kmsg gets them only through
// printk's rate limit (about 10 per 5 s were seen), and not at all once auditd takes them.
// Needs CAP_AUDIT_READ in the initial user namespace (bind fails with EPERM otherwise, and in a
// container). Non-blocking and close-on-exec; a read never waits.

import { KernelError } from "./errors.js";
import { close, lastErrno, libcFunction, setErrno } from "./libc.js";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_AUDIT = 9;
/** include/uapi/linux/audit.h: enum audit_nlgrps { AUDIT_NLGRP_NONE, AUDIT_NLGRP_READLOG }. */
const AUDIT_NLGRP_READLOG = 1;
const MSG_DONTWAIT = 0x40;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const NLMSG_HDRLEN = 16;

/** One audit record as the kernel sent it: its type (1326 = SECCOMP) and its text ("audit(T:S): ..."). */
export interface AuditNetlinkRecord {
  type: number;
  text: string;
}

/** Opens and binds the read-log socket; throws KernelError (EPERM without CAP_AUDIT_READ). */
export function openAuditReadLog(): number {
  const socket = libcFunction("socket", "int socket(int domain, int type, int protocol)");
  setErrno(0);
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_AUDIT) as number;
  if (fd < 0) throw new KernelError("socket(AF_NETLINK, NETLINK_AUDIT)", lastErrno());
  try {
    // A larger queue: records that arrive between two reads wait there (the kernel counts, and
    // drops, what does not fit).
    const setsockopt = libcFunction("setsockopt", "int setsockopt(int fd, int level, int name, const void *val, uint32_t len)");
    const size = Buffer.alloc(4);
    size.writeInt32LE(4 << 20);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size, 4);
    // struct sockaddr_nl { sa_family_t nl_family; unsigned short nl_pad; __u32 nl_pid; __u32 nl_groups; }
    const addr = Buffer.alloc(12);
    addr.writeUInt16LE(AF_NETLINK, 0);
    addr.writeUInt32LE(0, 4); // the kernel assigns our port id
    addr.writeUInt32LE(1 << (AUDIT_NLGRP_READLOG - 1), 8);
    const bind = libcFunction("bind", "int bind(int fd, const void *addr, uint32_t addrlen)");
    setErrno(0);
    if ((bind(fd, addr, 12) as number) < 0) throw new KernelError("bind(NETLINK_AUDIT, AUDIT_NLGRP_READLOG)", lastErrno());
    return fd;
  } catch (e) {
    close(fd);
    throw e;
  }
}

/**
 * The records queued on a read-log socket, at most `max`, without waiting. ENOBUFS (the queue
 * overflowed: the kernel dropped records) is counted in `lost` and reading goes on.
 */
export function readAuditRecords(fd: number, max = 10_000, buf = Buffer.alloc(65536)): { records: AuditNetlinkRecord[]; lost: number } {
  const recv = libcFunction("recv", "long recv(int fd, void *buf, size_t len, int flags)");
  const records: AuditNetlinkRecord[] = [];
  let lost = 0;
  while (records.length < max) {
    setErrno(0);
    const n = Number(recv(fd, buf, buf.length, MSG_DONTWAIT));
    if (n < 0) {
      const e = lastErrno();
      if (e === 105 /* ENOBUFS */) {
        lost++;
        continue;
      }
      if (e === 11 /* EAGAIN */ || e === 4 /* EINTR */) break;
      throw new KernelError("recv(NETLINK_AUDIT)", e);
    }
    if (n === 0) break;
    records.push(...parseNetlinkMessages(buf.subarray(0, n)));
  }
  return { records, lost };
}

/** The nlmsghdr-framed messages of one datagram (a truncated one ends the list). */
export function parseNetlinkMessages(data: Buffer): AuditNetlinkRecord[] {
  const out: AuditNetlinkRecord[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= data.length) {
    const len = data.readUInt32LE(off);
    const type = data.readUInt16LE(off + 4);
    if (len < NLMSG_HDRLEN || off + len > data.length) break;
    let body = data.subarray(off + NLMSG_HDRLEN, off + len);
    const nul = body.indexOf(0);
    if (nul >= 0) body = body.subarray(0, nul);
    out.push({ type, text: body.toString("utf8") });
    off += (len + 3) & ~3;
  }
  return out;
}

export { close as closeAuditReadLog };
