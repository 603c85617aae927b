#!/usr/bin/env bash
# Prepare this machine for bytewatch, idempotently: Debian packages, kernel headers for BCC,
# tracefs/debugfs, the virtual environment and the project itself.
#
#   scripts/setup.sh          everything needed to run bytewatch
#   scripts/setup.sh --dev    the same, plus what the test suite drives (nginx, wrk, prometheus,
#                             alertmanager) and the development tools
#
# Every check that fails prints one line saying what is missing and how to fix it, then exits
# non-zero. Running it twice changes nothing the second time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$here/.venv"
dev=0
for arg in "$@"; do
    case "$arg" in
        --dev) dev=1 ;;
        -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "setup: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root to install packages and mount tracefs: sudo $0 $*"
command -v apt-get >/dev/null || die "needs a Debian-based system (apt-get not found); install BCC, kernel headers and python3-venv by hand"

arch=$(dpkg --print-architecture)
# nodejs runs the demo's shop API; the tests also drive nginx, wrk, Prometheus, Alertmanager, Java,
# make certificates for HTTPS servers with openssl, and bench/pingpong.c links libssl.
# gcc and python3-dev build the compiled exchange pipeline (setup.py, mypyc).
packages=(python3-bpfcc python3-venv python3-pip python3-dev gcc "linux-headers-$arch" curl ca-certificates iproute2 nodejs)
if [ "$dev" -eq 1 ]; then
    packages+=(nginx wrk prometheus prometheus-alertmanager openjdk-17-jdk-headless openssl libssl-dev)
fi
missing=()
for p in "${packages[@]}"; do
    # A runtime already on the machine (Node, Java from another source) counts as present.
    case "$p" in
        nodejs) command -v node >/dev/null && continue ;;
        openjdk-*) command -v javac >/dev/null && continue ;;
        nginx) command -v nginx >/dev/null && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    # nginx's and prometheus' maintainer scripts try to start services; a container has no init.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed: check network access to the Debian mirrors"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed (see the apt output above)"
fi

# BCC compiles the probe at start and looks for headers under /lib/modules/$(uname -r)/build.
# The probe reads only tracepoint arguments, never kernel struct offsets, so Debian's generic
# headers serve a kernel that ships none.
release=$(uname -r)
moddir="/lib/modules/$release"
if [ ! -e "$moddir/build/include" ]; then
    headers=$(ls -d /usr/src/linux-headers-*-"$arch" 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$headers" ] || die "no kernel headers under /usr/src (apt-get install linux-headers-$arch)"
    common="${headers%-"$arch"}-common"
    [ -d "$common" ] || die "$common is missing (apt-get install --reinstall linux-headers-$arch)"
    mkdir -p "$moddir"
    ln -sfn "$headers" "$moddir/build"
    ln -sfn "$common" "$moddir/source"
    say "linked $moddir/build -> $headers"
fi

mounted() { awk -v d="$1" '$2 == d { found = 1 } END { exit !found }' /proc/mounts; }
if ! mounted /sys/kernel/tracing; then
    mount -t tracefs nodev /sys/kernel/tracing \
        || die "cannot mount tracefs on /sys/kernel/tracing (in a container: run privileged, or mount it on the host)"
fi
if ! mounted /sys/kernel/debug; then
    mount -t debugfs nodev /sys/kernel/debug \
        || die "cannot mount debugfs on /sys/kernel/debug (in a container: run privileged, or mount it on the host)"
fi
[ -r /sys/kernel/btf/vmlinux ] \
    || die "this kernel exposes no BTF (/sys/kernel/btf/vmlinux); bytewatch needs a 5.8+ kernel built with CONFIG_DEBUG_INFO_BTF=y"
[ -d /sys/kernel/tracing/events/syscalls ] \
    || die "no syscall tracepoints under /sys/kernel/tracing/events/syscalls; the kernel needs CONFIG_FTRACE_SYSCALLS=y"

# The virtual environment uses Debian's Python, whose ABI matches python3-bpfcc; only the bcc
# package is linked in, so nothing else from the system site-packages leaks into the project.
py=/usr/bin/python3
[ -x "$py" ] || die "$py not found (apt-get install python3)"
if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    "$py" -m venv "$venv" || die "could not create $venv (apt-get install python3-venv)"
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
bcc_src=$("$py" -c 'import bcc, os; print(os.path.dirname(bcc.__file__))' 2>/dev/null) \
    || die "Debian's python3-bpfcc is not importable from $py (apt-get install --reinstall python3-bpfcc)"
ln -sfn "$bcc_src" "$site/bcc"

extra=""
[ "$dev" -eq 1 ] && extra="[dev]"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here$extra" \
    || die "pip install of the project failed (see above; BYTEWATCH_PURE_PYTHON=1 skips the compiled pipeline)"

# Node's test and demo servers need nothing from npm; Java's are compiled by the tests themselves.
"$venv/bin/bytewatch" doctor || exit 1
say "ready: $venv/bin/bytewatch"
