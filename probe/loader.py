"""The only module that imports ``bcc``: compile, attach, configure, read, clean up.

BCC comes from Debian's ``python3-bpfcc`` (``scripts/setup.sh`` links it into the virtual
environment). Every BCC failure is translated into ``ProbeUnavailable`` with one line saying
what to do, so the command line never shows a traceback for a machine problem.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from probe import procfs
from probe.abi import COMM_LEN, COUNTER_COUNT, Counter, RecordBatch, decode_batch
from probe.conn import ConnTotals
from probe.doctor import TRACEFS_DIRS
from probe.errors import ProbeUnavailable
from probe.kernel_structs import CCommKey, CConfig, CConn, CConnKey
from probe.ringbuf import MappedRingBuffer, mmap_supported

_log = logging.getLogger(__name__)
BPF_DIR = Path(os.environ.get("BYTEWATCH_BPF_DIR", Path(__file__).resolve().parent.parent / "bpf"))
PROBE_SOURCE = BPF_DIR / "http_probe.bpf.c"
SPILL_PAGES = 256  # 1 MiB: the spill ring takes only what the main ring refused
DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")


def _import_bcc() -> ModuleType:
    try:
        import bcc
    except ImportError as exc:
        raise ProbeUnavailable(
            "BCC is not importable: install Debian's python3-bpfcc and run scripts/setup.sh "
            "(the PyPI package named 'bcc' is unrelated)"
        ) from exc
    module: ModuleType = bcc
    return module


def bcc_import_problem() -> str | None:
    """None when BCC imports, else the one-line fix."""
    try:
        _import_bcc()
    except ProbeUnavailable as exc:
        return str(exc)
    return None


def trial_attach() -> str | None:
    """Compile and attach a one-line program to a syscall tracepoint; None on success."""
    bcc = _import_bcc()
    text = "TRACEPOINT_PROBE(syscalls, sys_exit_getpid) { return 0; }"
    try:
        b = bcc.BPF(text=text.encode())
    except Exception as exc:
        return f"cannot load a test eBPF program ({_first_line(exc)}): run scripts/setup.sh as root"
    b.cleanup()
    return None


def _text(name: bytes | str) -> str:
    return name.decode() if isinstance(name, bytes) else name


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """What the kernel side is told before it attaches."""

    capture_bytes: int = 3072  # per message and direction: room for headers plus a 1 KiB body
    ringbuf_pages: int = 4096  # 16 MiB: several seconds of headroom at 10,000 requests/s
    max_connections: int = 65536
    pids: frozenset[int] = frozenset()
    comms: frozenset[str] = frozenset()  # thread names matched in the kernel; see probe.filters
    ports: frozenset[int] = frozenset()
    self_tgid: int = field(default_factory=os.getpid)
    # False: the portable build even where programs may use the current task as a BTF pointer
    # (see LoadedProbe.syscall_exits); tests and bench/kernel_cost.py compare the two.
    task_btf: bool = True
    # OpenSSL's plaintext through uprobes (see tls_targets). Off unless asked: a uprobe traps on
    # every SSL call of every process, about 11 us each on this project's VMs (kernel_cost).
    tls: bool = False
    tls_binaries: frozenset[str] = frozenset()  # executables with OpenSSL linked in statically
    spill_every: int = 0  # tests only: every Nth record of a connection goes through the spill ring

    def __post_init__(self) -> None:
        if not 64 <= self.capture_bytes <= 4096:
            raise ValueError(f"capture_bytes must be between 64 and 4096, not {self.capture_bytes}")
        if self.ringbuf_pages <= 0 or self.ringbuf_pages & (self.ringbuf_pages - 1):
            raise ValueError(f"ringbuf_pages must be a power of two, not {self.ringbuf_pages}")
        if self.spill_every < 0:
            raise ValueError(f"spill_every must not be negative, not {self.spill_every}")


# OpenSSL's plaintext calls and the probe functions that see them enter (all share tls_return).
# SSL_read_ex/SSL_write_ex are what CPython's ssl module calls; nginx, curl and Node call the
# others. None of them calls another, so nothing is seen twice.
TLS_SYMBOLS: tuple[tuple[bytes, bytes], ...] = (
    (b"SSL_read", b"tls_read_enter"),
    (b"SSL_write", b"tls_write_enter"),
    (b"SSL_read_ex", b"tls_read_ex_enter"),
    (b"SSL_write_ex", b"tls_write_ex_enter"),
)
NODE_NAMES = frozenset({"node", "nodejs"})
# Where distributions install OpenSSL, for services that start after the probe.
LIBSSL_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")


def tls_targets(binaries: Iterable[str] = ()) -> set[Path]:
    """Files to put TLS uprobes on: every libssl that a process maps (through that process's
    view of its files, so containers' own copies count), running Node executables (OpenSSL is
    linked in), the agent's own libssl and Node for services that start later, and the
    executables the user names. The same file may appear under several paths."""
    found = procfs.mapped_files("libssl.so")
    found.update(procfs.executables_named(NODE_NAMES))
    for directory in LIBSSL_DIRS:
        found.update(Path(directory).glob("libssl.so.*"))
    node = shutil.which("node")
    if node:
        found.add(Path(node))
    found.update(Path(b) for b in binaries)
    return {path for path in found if path.is_file()}


def io_uring_submissions_visible(tracefs: tuple[Path, ...] = TRACEFS_DIRS) -> bool:
    """Whether the kernel has io_uring's submission tracepoint with the operation's code (5.19
    and later): where it does, the probe counts io_uring's socket operations."""
    for root in tracefs:
        try:
            text = (root / "events/io_uring/io_uring_submit_req/format").read_text()
        except OSError:
            continue
        return " opcode;" in text
    return False


def _compile_flags(config: ProbeConfig, bpf_dir: Path) -> list[str]:
    """The kernel side's -I and -D flags, whichever way it sees syscall exits."""
    cflags = [
        f"-I{bpf_dir}",
        f"-DBW_RINGBUF_PAGES={config.ringbuf_pages}",
        f"-DBW_SPILL_PAGES={SPILL_PAGES}",
        f"-DBW_MAX_CONNS={config.max_connections}",
        "-Wno-unused-function",
    ]
    if config.tls:
        cflags.append("-DBW_TLS=1")
    if io_uring_submissions_visible():
        cflags.append("-DBW_IO_URING=1")
    if config.spill_every:
        cflags.append(f"-DBW_SPILL_EVERY={config.spill_every}")
    return cflags


TRACEPOINT_EXITS = "exit tracepoints"
PORTABLE_EXITS = "raw sys_exit"


class LoadedProbe:
    """A compiled and attached probe. Use as a context manager: ``close`` detaches everything."""

    def __init__(self, config: ProbeConfig, *, bpf_dir: Path = BPF_DIR) -> None:
        """``bpf_dir``: where the kernel side's source is; benchmarks point it at another
        revision's to compare the two in one run."""
        bcc = _import_bcc()
        source = bpf_dir / PROBE_SOURCE.name
        if not source.is_file():
            raise ProbeUnavailable(f"probe source not found at {source} (set BYTEWATCH_BPF_DIR)")
        cflags = _compile_flags(config, bpf_dir)
        # Where programs may use the current task as a BTF pointer (5.15+), each syscall's own exit
        # tracepoint reads its registers through the task, and TLS calls in flight live in task
        # storage. Elsewhere one raw tracepoint runs at the exit of every syscall, which costs
        # more per request (bpf/http_probe.bpf.c says how much), and TLS calls go to a hash map.
        builds = [(PORTABLE_EXITS, cflags)]
        if config.task_btf:
            builds.insert(0, (TRACEPOINT_EXITS, [*cflags, "-DBW_TASK_BTF=1"]))
        self._bpf: Any = None
        for syscall_exits, flags in builds:
            try:
                self._bpf = bcc.BPF(src_file=str(source).encode(), cflags=flags)
                self.syscall_exits = syscall_exits
                break
            except Exception as exc:
                if syscall_exits == PORTABLE_EXITS:
                    raise ProbeUnavailable(
                        f"cannot load the probe ({_first_line(exc)}): "
                        "run `bytewatch doctor` for what is missing"
                    ) from exc
                _log.warning(
                    "syscalls are seen through the raw sys_exit tracepoint: their own exit "
                    "tracepoints failed to load (%s)",
                    _first_line(exc),
                )
        self._batch: list[bytes] = []
        self._rings: tuple[MappedRingBuffer, ...] = ()
        try:
            self._configure(config)
            events, spill = self._bpf[b"events"], self._bpf[b"spill"]
            if mmap_supported():
                self._rings = (
                    MappedRingBuffer(events.map_fd, config.ringbuf_pages * mmap.PAGESIZE),
                    MappedRingBuffer(spill.map_fd, SPILL_PAGES * mmap.PAGESIZE),
                )
            else:
                batch = self._batch

                def deliver(_ctx: object, data: int, size: int) -> None:
                    batch.append(ctypes.string_at(data, size))

                self._deliver = deliver  # keep the ctypes callback alive with the probe
                events.open_ring_buffer(deliver)
                spill.open_ring_buffer(deliver)
        except Exception:
            self._bpf.cleanup()
            raise
        self._tls_files: set[tuple[int, int]] = set()  # (st_dev, st_ino) already probed
        self.tls_targets: tuple[str, ...] = ()
        self._tls_binaries = config.tls_binaries
        if config.tls:
            targets: tuple[str, ...] = self.attach_new_tls_targets()
            probed = {os.path.realpath(target) for target in targets}
            for binary in sorted(config.tls_binaries):
                if os.path.realpath(binary) not in probed:
                    _log.warning("no TLS uprobes on %s: not a file exporting SSL_read", binary)
        self._conns = self._bpf[b"conns"]
        self._counters = self._bpf[b"counters"]
        self._listen_ports = self._bpf[b"listen_ports"]

    def attach_new_tls_targets(self) -> tuple[str, ...]:
        """Put TLS uprobes on OpenSSL copies not probed yet (services start and upgrade after
        the probe); returns the newly probed ones. A file is probed once, whatever its path."""
        added: list[str] = []
        for target in sorted(tls_targets(self._tls_binaries)):
            try:
                stat = target.stat()
            except OSError:
                continue
            identity = (stat.st_dev, stat.st_ino)
            if identity in self._tls_files:
                continue
            self._tls_files.add(identity)
            # Free first, then each return probe before its entry probe: an entry seen without
            # its return would leave a thread's slot open and hide its plain I/O until its next
            # TLS call. SSL_free ends streams keyed by the SSL object.
            if not self._attach_uprobe(target, b"SSL_free", b"tls_free", ret=False):
                continue
            attached = [
                symbol
                for symbol, entry in TLS_SYMBOLS
                if self._attach_uprobe(target, symbol, b"tls_return", ret=True)
                and self._attach_uprobe(target, symbol, entry, ret=False)
            ]
            if attached:
                added.append(str(target))
        if added:
            self.tls_targets = (*self.tls_targets, *added)
        return tuple(added)

    def _attach_uprobe(self, target: Path, symbol: bytes, fn: bytes, *, ret: bool) -> bool:
        name = str(target).encode()
        try:
            if ret:
                self._bpf.attach_uretprobe(name=name, sym=symbol, fn_name=fn)
            else:
                self._bpf.attach_uprobe(name=name, sym=symbol, fn_name=fn)
        except Exception as exc:  # no such symbol: not an OpenSSL, or one without the _ex calls
            _log.debug("no TLS uprobe on %s:%s (%s)", target, symbol.decode(), _first_line(exc))
            return False
        return True

    def _configure(self, config: ProbeConfig) -> None:
        filter_pids = bool(config.pids or config.comms)
        cfg = CConfig(
            self_tgid=config.self_tgid,
            capture_bytes=config.capture_bytes,
            filter_pids=int(filter_pids),
            filter_ports=int(bool(config.ports)),
            filter_comms=int(bool(config.comms)),
        )
        self._bpf[b"config"][ctypes.c_int(0)] = cfg
        self.set_pids(config.pids)
        comms = self._bpf[b"filter_comms"]
        for comm in config.comms:
            comms[CCommKey(comm=comm.encode()[: COMM_LEN - 1])] = ctypes.c_uint8(1)
        ports = self._bpf[b"filter_ports"]
        for port in config.ports:
            ports[ctypes.c_uint16(port)] = ctypes.c_uint8(1)

    def set_pids(self, pids: Iterable[int]) -> None:
        """Replace the kernel's pid filter (used to follow processes by name)."""
        table = self._bpf[b"filter_pids"]
        wanted = set(pids)
        present = {k.value for k in table}
        for pid in present - wanted:
            del table[ctypes.c_uint32(pid)]
        for pid in wanted - present:
            table[ctypes.c_uint32(pid)] = ctypes.c_uint8(1)

    def seed_listen_ports(self, listeners: Mapping[tuple[int, int], int]) -> None:
        """Tell the kernel the ports of sockets that were bound before the probe attached."""
        for (tgid, fd), port in listeners.items():
            self._listen_ports[CConnKey(tgid=tgid, fd=fd)] = ctypes.c_uint16(port)

    def program_fds(self) -> dict[str, int]:
        """Each loaded eBPF program's fd by function name (bench/kernel_programs.py reads
        their run times)."""
        return {_text(name): fn.fd for name, fn in self._bpf.funcs.items()}

    @property
    def main_ring(self) -> tuple[int, int] | None:
        """The main ring buffer's map fd and data size, when it is read from its memory map."""
        if not self._rings:
            return None
        return self._rings[0].map_fd, self._rings[0].data_size

    def poll(self, timeout_s: float, limit: int = 0) -> RecordBatch:
        """The records waiting in the ring buffers, waiting at most ``timeout_s`` for one;
        ``limit`` as in ``consume``."""
        if self._rings:
            self._rings[0].wait(timeout_s)
            return self._drain(limit)
        self._bpf.ring_buffer_poll(int(timeout_s * 1000))
        return decode_batch(self._take())

    def consume(self, limit: int = 0) -> RecordBatch:
        """The records waiting in the ring buffers, without waiting. ``limit`` (0: none) bounds
        how many are taken from the main ring (``MappedRingBuffer.drain_records``); the spill
        ring's come on top, and BCC's callbacks (the fallback) take everything."""
        if self._rings:
            return self._drain(limit)
        self._bpf.ring_buffer_consume()
        return decode_batch(self._take())

    def discard(self) -> int:
        """Drop the records waiting in the ring buffers, undecoded; how many there were. For
        benchmarks that measure the kernel side without an agent's work."""
        if self._rings:
            return sum(len(ring.drain()) for ring in self._rings)
        self._bpf.ring_buffer_consume()
        return len(self._take())

    def _drain(self, limit: int) -> RecordBatch:
        """Both rings: a record refused by the main ring is in the spill ring, and the records
        of its connection that follow it are in the main ring (user space resequences)."""
        main, spill = self._rings
        spilled = spill.drain_records()
        if spilled.records or spilled.undecodable:
            batch = main.drain_records(limit)
            return RecordBatch(
                spilled.records + batch.records, spilled.undecodable + batch.undecodable
            )
        return main.drain_records(limit)

    def _take(self) -> list[bytes]:
        batch = list(self._batch)
        self._batch.clear()
        return batch

    def counters(self) -> dict[Counter, int]:
        """The kernel's counters summed over CPUs."""
        totals: dict[Counter, int] = {}
        for counter in Counter:
            if counter.value >= COUNTER_COUNT:
                continue
            per_cpu = self._counters[ctypes.c_int(counter.value)]
            totals[counter] = sum(int(v) for v in per_cpu)
        return totals

    def conn_totals(self, tgid: int, fd: int) -> ConnTotals | None:
        """The kernel's current byte accounting for a connection, or None if it is gone."""
        try:
            c: CConn = self._conns[CConnKey(tgid=tgid, fd=fd)]
        except KeyError:
            return None
        return ConnTotals(
            conn_id=c.conn_id,
            in_bytes=c.in_bytes,
            in_last_ns=c.in_last_ns,
            out_bytes=c.out_bytes,
            out_last_ns=c.out_last_ns,
            out_tail=int(c.out_tail).to_bytes(8, "little"),
        )

    def close(self) -> None:
        for ring in self._rings:
            ring.close()
        self._bpf.cleanup()

    def __enter__(self) -> LoadedProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
