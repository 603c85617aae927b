"""Can this machine run the probe? One actionable line per problem.

Used by ``bytewatch doctor``, by the setup script's last step, by ``bytewatch run`` at start and
by the test suite to decide whether kernel tests can run.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# Linux capability numbers (include/uapi/linux/capability.h).
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

TRACEFS_DIRS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
BTF_PATH = Path("/sys/kernel/btf/vmlinux")


def effective_capabilities(status_text: str) -> int:
    """The CapEff mask from the text of /proc/<pid>/status (0 when absent)."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def missing_privilege(euid: int, cap_eff: int) -> str | None:
    """Why this process may not load tracing programs, or None when it may."""
    if euid == 0 and cap_eff & (1 << CAP_SYS_ADMIN):
        return None
    has_bpf = bool(cap_eff & (1 << CAP_BPF)) and bool(cap_eff & (1 << CAP_PERFMON))
    if has_bpf or cap_eff & (1 << CAP_SYS_ADMIN):
        return None
    return (
        "not privileged: run as root, or grant CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH, "
        "CAP_SYS_RESOURCE and CAP_SYS_PTRACE (see deploy/systemd/bytewatch.service)"
    )


def tracefs_dir() -> Path | None:
    """Where the syscall tracepoints are described, if tracefs is mounted."""
    for d in TRACEFS_DIRS:
        if (d / "events" / "syscalls").is_dir():
            return d
    return None


def run_checks(*, try_attach: bool = True) -> list[str]:
    """Every reason the probe cannot run here; empty when it can."""
    problems: list[str] = []
    if platform.system() != "Linux":
        return [f"the probe needs Linux, this is {platform.system()}"]
    status = Path("/proc/self/status").read_text()
    privilege = missing_privilege(os.geteuid(), effective_capabilities(status))
    if privilege:
        problems.append(privilege)
    if not BTF_PATH.exists():
        problems.append(
            f"no BTF at {BTF_PATH}: needs a 5.8+ kernel built with CONFIG_DEBUG_INFO_BTF=y"
        )
    if tracefs_dir() is None:
        problems.append(
            "tracefs is not mounted: mount -t tracefs nodev /sys/kernel/tracing "
            "(scripts/setup.sh does this)"
        )
    build = Path("/lib/modules") / platform.release() / "build"
    if not (build / "include").is_dir():
        problems.append(
            f"no kernel headers at {build}: run scripts/setup.sh, or link it to "
            "/usr/src/linux-headers-*-<arch> (see DEVELOPERS.md)"
        )
    from probe import loader

    bcc_problem = loader.bcc_import_problem()
    if bcc_problem:
        problems.append(bcc_problem)
    if try_attach and not problems:
        attach_problem = loader.trial_attach()
        if attach_problem:
            problems.append(attach_problem)
    return problems
