"""Which of bytewatch's modules run compiled (mypyc, see setup.py), and which are stale.

An editable install puts each compiled module beside its source, and Python prefers the
compiled one. Edit the source (or check out another commit) without rebuilding and the old code
keeps running; ``stale_modules`` catches that by comparing modification times, which an edit,
a checkout and a rebuild all move forward.
"""

from __future__ import annotations

import importlib.machinery
from dataclasses import dataclass
from pathlib import Path

PACKAGES_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("probe", "slo", "alerts")
REBUILD_HINT = (
    "rebuild with `.venv/bin/pip install -e .` (scripts/setup.sh does it), or delete the "
    "compiled files to run the pure-Python source: `rm probe/*.so slo/*.so *__mypyc*.so`"
)


@dataclass(frozen=True, slots=True)
class CompiledModule:
    name: str  # "probe.http"
    source: Path
    binary: Path

    @property
    def stale(self) -> bool:
        """The source changed after the binary was built, so the binary runs old code."""
        return self.source.stat().st_mtime > self.binary.stat().st_mtime


def compiled_modules(root: Path = PACKAGES_ROOT) -> tuple[CompiledModule, ...]:
    """Every module under ``root``'s packages that has a compiled extension beside its source."""
    found: list[CompiledModule] = []
    for package in PACKAGES:
        directory = root / package
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            for binary in sorted(directory.glob(f"*{suffix}")):
                stem = binary.name[: -len(suffix)]
                source = directory / f"{stem}.py"
                if not source.exists():
                    source = directory / f"{stem}.c"  # written in C by hand (setup.py)
                if source.exists():
                    found.append(CompiledModule(f"{package}.{stem}", source, binary))
    return tuple(found)


def stale_modules(root: Path = PACKAGES_ROOT) -> tuple[CompiledModule, ...]:
    return tuple(m for m in compiled_modules(root) if m.stale)


def describe(root: Path = PACKAGES_ROOT) -> str:
    """One line for logs and ``bytewatch doctor``."""
    modules = compiled_modules(root)
    if not modules:
        return "exchange pipeline: pure Python (not compiled; see setup.py)"
    stale = [m.name for m in modules if m.stale]
    if stale:
        return f"exchange pipeline: compiled, but {', '.join(stale)} changed since: {REBUILD_HINT}"
    in_c = sum(1 for m in modules if m.source.suffix == ".c")
    mypyc = f"exchange pipeline: compiled with mypyc ({len(modules) - in_c} modules)"
    return f"{mypyc} and C ({in_c})" if in_c else mypyc
