"""The compiled exchange pipeline: what CI tests is what setup.py builds, and stale builds show."""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import os
from pathlib import Path

from probe.compiled import compiled_modules, describe, stale_modules
from tests.ci import skip_or_fail
from tests.conftest import ROOT

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def modules_setup_compiles() -> set[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "COMPILED":
            paths: list[str] = ast.literal_eval(node.value)
            return {p.removesuffix(".py").replace("/", ".") for p in paths} | hand_written(tree)
    raise AssertionError("setup.py has no COMPILED list")


def hand_written(tree: ast.Module) -> set[str]:
    """The names of setup.py's HAND_WRITTEN extensions (their first argument)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "HAND_WRITTEN":
            assert isinstance(node.value, ast.List)
            return {
                ast.literal_eval(call.args[0])
                for call in node.value.elts
                if isinstance(call, ast.Call)
            }
    raise AssertionError("setup.py has no HAND_WRITTEN list")


def fake_build(
    root: Path, name: str, *, source_age: float, binary_age: float, language: str = "py"
) -> None:
    package = root / "probe"
    package.mkdir(exist_ok=True)
    source, binary = package / f"{name}.{language}", package / f"{name}{SUFFIX}"
    source.write_text("")
    binary.write_bytes(b"")
    os.utime(source, (1e9 - source_age, 1e9 - source_age))
    os.utime(binary, (1e9 - binary_age, 1e9 - binary_age))


def test_every_module_setup_py_names_runs_compiled() -> None:
    compiled = {m.name for m in compiled_modules()}
    if not compiled:
        skip_or_fail("the exchange pipeline is not compiled here (BYTEWATCH_PURE_PYTHON was set)")
    assert compiled == modules_setup_compiles()
    for name in compiled:
        assert importlib.import_module(name).__file__.endswith(SUFFIX)  # type: ignore[union-attr]


def test_a_source_edited_after_its_build_is_stale(tmp_path: Path) -> None:
    fake_build(tmp_path, "http", source_age=10, binary_age=20)
    fake_build(tmp_path, "conn", source_age=20, binary_age=10)
    assert [m.name for m in stale_modules(tmp_path)] == ["probe.http"]
    assert "probe.http changed since" in describe(tmp_path)


def test_a_fresh_build_is_described_as_compiled(tmp_path: Path) -> None:
    fake_build(tmp_path, "conn", source_age=20, binary_age=10)
    assert stale_modules(tmp_path) == ()
    assert describe(tmp_path) == "exchange pipeline: compiled with mypyc (1 modules)"


def test_c_written_by_hand_is_told_apart_and_checked_for_staleness_too(tmp_path: Path) -> None:
    fake_build(tmp_path, "conn", source_age=20, binary_age=10)
    fake_build(tmp_path, "_head", source_age=20, binary_age=10, language="c")
    assert describe(tmp_path) == "exchange pipeline: compiled with mypyc (1 modules) and C (1)"
    fake_build(tmp_path, "_head", source_age=10, binary_age=20, language="c")
    assert [m.name for m in stale_modules(tmp_path)] == ["probe._head"]


def test_without_binaries_the_pipeline_is_pure_python(tmp_path: Path) -> None:
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "http.py").write_text("")
    assert compiled_modules(tmp_path) == ()
    assert describe(tmp_path).startswith("exchange pipeline: pure Python")
