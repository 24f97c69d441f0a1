#!/usr/bin/python3
"""Builds the same filter as pg_seccomp's compiler with libseccomp and times it.

Run with Debian's /usr/bin/python3 (python3-seccomp is packaged for it, not for a pyenv
python), normally from bench/compile-bench.ts:

    /usr/bin/python3 bench/libseccomp_gen.py SPEC.json OUTDIR RUNS WARMUP

SPEC.json:
    {"name": "seed-global",
     "default": {"kind": "log"},
     "rules": [{"name": "read", "nr": 0, "kind": "allow"},
               {"name": "open", "nr": 2, "kind": "error", "errno": 13}, ...]}

kind is one of allow, log, error (with errno), trap, kill (= KILL_PROCESS). Only the native
arch is in the filter (seccomp_init adds it; nothing else is added).

Writes OUTDIR/NAME.linear.bpf (libseccomp's default, a linear list of syscall checks) and
OUTDIR/NAME.tree.bpf (CTL_OPTIMIZE = 2, the binary tree), raw struct sock_filter arrays as
export_bpf writes them, and prints one JSON object on stdout with the median generation time
of each (seccomp_init + every seccomp_rule_add + seccomp_export_bpf to /dev/null, through
the Python binding, so Python call overhead is included).
"""

import json
import os
import statistics
import sys
import time

import seccomp


def action(spec):
    kind = spec["kind"]
    if kind == "allow":
        return seccomp.ALLOW
    if kind == "log":
        return seccomp.LOG
    if kind == "error":
        return seccomp.ERRNO(spec["errno"])
    if kind == "trap":
        return seccomp.TRAP
    if kind == "kill":
        return seccomp.KILL_PROCESS
    raise ValueError("unknown action kind %r" % kind)


def build(defact, rules, optimize, out_fd):
    f = seccomp.SyscallFilter(defact)
    if optimize:
        f.set_attr(seccomp.Attr.CTL_OPTIMIZE, 2)
    for act, sc in rules:
        f.add_rule(act, sc)
    f.export_bpf(out_fd)
    return f


def main(argv):
    if len(argv) != 5:
        sys.stderr.write("usage: libseccomp_gen.py SPEC.json OUTDIR RUNS WARMUP\n")
        return 2
    spec_path, outdir, runs, warmup = argv[1], argv[2], int(argv[3]), int(argv[4])
    with open(spec_path) as fh:
        spec = json.load(fh)

    defact = action(spec["default"])
    # Names where libseccomp knows them with the same number (so its name lookup is part of
    # the timed work, as ours is); a number where its table is older than ours or disagrees.
    rules = []
    by_number = []
    for r in spec["rules"]:
        try:
            known = seccomp.resolve_syscall(seccomp.Arch.NATIVE, r["name"])
        except Exception:
            known = None
        if known == r["nr"]:
            rules.append((action(r), r["name"]))
        else:
            rules.append((action(r), r["nr"]))
            by_number.append(r["name"])

    result = {
        "libseccomp": "%d.%d.%d" % _version(),
        "python": sys.version.split()[0],
        "rules": len(rules),
        "by_number": by_number,
    }
    devnull = open(os.devnull, "wb")
    for variant, optimize in (("linear", False), ("tree", True)):
        for _ in range(warmup):
            build(defact, rules, optimize, devnull)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            build(defact, rules, optimize, devnull)
            times.append(time.perf_counter_ns() - t0)
        path = os.path.join(outdir, "%s.%s.bpf" % (spec["name"], variant))
        with open(path, "wb") as out:
            build(defact, rules, optimize, out)
        result[variant] = {
            "median_us": statistics.median(times) / 1000.0,
            "min_us": min(times) / 1000.0,
            "runs": runs,
            "file": path,
        }
    devnull.close()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


def _version():
    try:
        import ctypes
        lib = ctypes.CDLL("libseccomp.so.2")
        lib.seccomp_version.restype = ctypes.POINTER(ctypes.c_uint * 3)
        v = lib.seccomp_version().contents
        return (v[0], v[1], v[2])
    except Exception:
        return (0, 0, 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
