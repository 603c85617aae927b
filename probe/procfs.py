"""What /proc says about processes and sockets. The only module here that reads /proc.

Everything is best-effort: a process can exit between two reads, so every function returns a
fallback instead of raising.
"""

from __future__ import annotations

import os
from pathlib import Path

from probe.services import (
    KUBERNETES,
    OTEL,
    SYSTEMD,
    ProcessNames,
    hostname_in,
    in_kubernetes_pod,
    kubernetes_workload,
    otel_service_name,
    systemd_unit,
)

PROC = Path("/proc")
_TCP_LISTEN = "0A"


def process_comm(pid: int, proc: Path = PROC) -> str | None:
    """The process's name (its main thread's comm), or None if it is gone."""
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return None


def process_environ(pid: int, proc: Path = PROC) -> bytes:
    """The environment the process was started with, NUL-separated; empty if it is gone or not
    ours to read (reading another user's takes CAP_SYS_PTRACE)."""
    try:
        return (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return b""


def process_cgroup(pid: int, proc: Path = PROC) -> str:
    """The process's /proc/PID/cgroup; empty if it is gone."""
    try:
        return (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return ""


def process_uts_namespace(pid: int, proc: Path = PROC) -> str | None:
    """Which UTS namespace (host name) the process is in, "uts:[4026531838]"; None if it is gone
    or not ours to see."""
    try:
        return os.readlink(proc / str(pid) / "ns" / "uts")
    except OSError:
        return None


def process_names(pid: int, sources: frozenset[str], proc: Path = PROC) -> ProcessNames:
    """The names a process gives itself, read from ``sources`` only (``probe.services``)."""
    environ = process_environ(pid, proc) if OTEL in sources or KUBERNETES in sources else b""
    cgroup = process_cgroup(pid, proc) if SYSTEMD in sources or KUBERNETES in sources else ""
    return ProcessNames(
        otel=otel_service_name(environ) if OTEL in sources else None,
        systemd=systemd_unit(cgroup) if SYSTEMD in sources else None,
        kubernetes=_pod_workload(pid, environ, cgroup, proc) if KUBERNETES in sources else None,
    )


def _pod_workload(pid: int, environ: bytes, cgroup: str, proc: Path) -> str | None:
    """The workload of the pod the process runs in, from the pod's name in HOSTNAME. Only in a
    pod with a host name of its own: a pod on the host's network has the node's name, and
    processes outside pods may have any HOSTNAME at all."""
    if not in_kubernetes_pod(cgroup):
        return None
    own = process_uts_namespace(pid, proc)
    if own is None or own == process_uts_namespace(1, proc):
        return None
    pod = hostname_in(environ)
    return kubernetes_workload(pod) if pod is not None else None


def pids_named(names: frozenset[str], proc: Path = PROC) -> set[int]:
    """Pids of processes whose name is one of ``names``."""
    found: set[int] = set()
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit() and process_comm(int(entry.name), proc) in names:
            found.add(int(entry.name))
    return found


def _socket_inodes(table: Path, listening_only: bool) -> dict[int, int]:
    """inode -> local port from /proc/net/tcp or tcp6."""
    ports: dict[int, int] = {}
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return ports
    for line in lines:
        fields = line.split()
        if len(fields) < 10:
            continue
        if listening_only and fields[3] != _TCP_LISTEN:
            continue
        port = int(fields[1].rsplit(":", 1)[1], 16)
        ports[int(fields[9])] = port
    return ports


def _inodes(listening_only: bool, proc: Path) -> dict[int, int]:
    found = _socket_inodes(proc / "net" / "tcp", listening_only)
    found.update(_socket_inodes(proc / "net" / "tcp6", listening_only))
    return found


def _fd_inode(link: Path) -> int | None:
    try:
        target = os.readlink(link)
    except OSError:
        return None
    if target.startswith("socket:["):
        return int(target[8:-1])
    return None


def listening_sockets(proc: Path = PROC) -> dict[tuple[int, int], int]:
    """(pid, fd) -> port for every listening TCP socket on the host, so the probe knows the
    ports of servers that started before it."""
    listeners = _inodes(listening_only=True, proc=proc)
    found: dict[tuple[int, int], int] = {}
    if not listeners:
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            inode = _fd_inode(fd)
            if inode is not None and inode in listeners:
                found[(int(entry.name), int(fd.name))] = listeners[inode]
    return found


def socket_local_port(pid: int, fd: int, proc: Path = PROC) -> int:
    """The local port of an open socket, or 0 if unknown."""
    inode = _fd_inode(proc / str(pid) / "fd" / str(fd))
    if inode is None:
        return 0
    return _inodes(listening_only=False, proc=proc).get(inode, 0)


def mapped_files(fragment: str, proc: Path = PROC) -> set[Path]:
    """Files whose name contains ``fragment`` that some process maps (e.g. every OpenSSL
    ``libssl.so`` in use), as paths that reach the file that process sees: through its root
    (a container's own copy) or, for a file deleted since (an upgraded library still in use),
    through its mapping."""
    found: set[Path] = set()
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            maps = (entry / "maps").read_text()
        except OSError:
            continue
        if fragment not in maps:  # most processes map no such file: skip the line splitting
            continue
        for line in maps.splitlines():
            # address perms offset dev inode path (the path may hold spaces)
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or not fields[5].startswith("/"):
                continue
            path = fields[5]
            if path.endswith(" (deleted)"):
                if fragment in path.rsplit("/", 1)[-1]:
                    found.add(entry / "map_files" / fields[0])
            elif fragment in path.rsplit("/", 1)[-1]:
                found.add(entry / "root" / path.lstrip("/"))
    return found


def executables_named(names: frozenset[str], proc: Path = PROC) -> set[Path]:
    """``/proc/PID/exe`` of every process whose executable's file name is one of ``names``,
    wherever it was installed and in whichever container."""
    found: set[Path] = set()
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            target = os.readlink(entry / "exe")
        except OSError:
            continue
        if target.removesuffix(" (deleted)").rsplit("/", 1)[-1] in names:
            found.add(entry / "exe")
    return found
