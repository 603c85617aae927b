"""Compiles the exchange pipeline's hot modules to C extensions with mypyc.

Every exchange the probe sees passes through these modules, so their per-exchange cost is the
agent's CPU: compiled, the from-records pipeline of bench/pipeline.py takes about 10 us per
exchange instead of 17 (same source, same outputs). They are plain, strictly typed Python and
stay importable as such: ``BYTEWATCH_PURE_PYTHON=1`` skips the compilation, and
``probe.compiled`` tells which modules run compiled and whether one is older than its source.

probe/kernel_structs.py stays pure Python: mypyc cannot build ctypes structures. probe/_head.c,
probe/_records.c, probe/_json_prefix.c and probe/_needles.c are C written by hand
(HAND_WRITTEN), with probe.http.parse_head_in_python, probe.abi.decode_records_in_python,
probe.body.scan_in_python and probe.semantics.worth_parsing_in_python as their references; so
is probe/_priority.c, the reading thread's priority watcher (without it the reader stays at its
nice value).
"""

from __future__ import annotations

import os

from setuptools import Extension, setup

COMPILED = [
    "probe/abi.py",
    "probe/http.py",
    "probe/conn.py",
    "probe/exchanges.py",
    "probe/routes.py",
    "probe/body.py",
    "probe/model.py",
    "probe/services.py",
    "probe/semantics.py",
    "probe/ringbuf.py",
    "probe/source.py",
    "slo/aggregate.py",
]


# C written by hand. _head and _records are where mypyc's output still spent most of its time
# allocating: each has a pure-Python reference it is tested against (see its header comment).
HAND_WRITTEN = [
    Extension("probe._head", ["probe/_head.c"], extra_compile_args=["-O2"]),
    Extension(
        "probe._records", ["probe/_records.c"], include_dirs=["bpf"], extra_compile_args=["-O2"]
    ),
    # Where a cut JSON body can be closed; probe.body.scan_in_python is its reference.
    Extension("probe._json_prefix", ["probe/_json_prefix.c"], extra_compile_args=["-O2"]),
    # probe.semantics' pre-check in one pass; probe.semantics.worth_parsing_in_python is its
    # reference.
    Extension("probe._needles", ["probe/_needles.c"], extra_compile_args=["-O2"]),
    # Not an accelerator: a thread that must run when Python cannot (see its header comment).
    Extension("probe._priority", ["probe/_priority.c"], extra_compile_args=["-O2"]),
]


def extensions() -> list[object]:
    if os.environ.get("BYTEWATCH_PURE_PYTHON", "") not in ("", "0"):
        return []
    from mypyc.build import mypycify

    # One group name, so the shared runtime library keeps its name across builds.
    compiled = list(mypycify(COMPILED, opt_level="3", group_name="bytewatch_pipeline"))
    return [*compiled, *HAND_WRITTEN]


setup(ext_modules=extensions())
