"""The rules of the house about imports, checked on the source (ARCHITECTURE.md, "Rules")."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("probe", "slo", "alerts")
# slo/settings.py validates the whole configuration, alerting's sections included, before
# anything starts: it composes like app.py and cli.py do (DEVELOPERS.md).
COMPOSITION_ROOTS = {"slo/app.py", "slo/cli.py", "slo/settings.py"}


def imports_of(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def sources() -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            pairs.extend((rel, name) for name in imports_of(path))
    return pairs


def violation(module: str, imported: str) -> str | None:
    top = imported.split(".", maxsplit=1)[0]
    package = module.split("/", maxsplit=1)[0]
    if top == "bcc" and module != "probe/loader.py":
        return "bcc may only be imported by probe/loader.py"
    if top == "httpx" and package != "alerts":
        return "httpx may only be imported inside alerts/"
    if module in COMPOSITION_ROOTS:
        return None
    if package == "probe" and top in {"slo", "alerts"}:
        return "probe imports no other first-party package"
    if package == "slo" and top == "alerts":
        return "only slo/app.py and slo/cli.py import alerts"
    if package == "alerts" and top == "probe":
        return "alerts does not import probe"
    if package == "alerts" and top == "slo" and imported != "slo.model":
        return "alerts may import slo.model only"
    return None


def test_every_import_points_down_the_flow() -> None:
    problems = [
        f"{module}: imports {imported}: {why}"
        for module, imported in sources()
        if (why := violation(module, imported))
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("module", "imported", "allowed"),
    [
        ("probe/conn.py", "slo.model", False),
        ("probe/trace.py", "bcc", False),
        ("probe/loader.py", "bcc", True),
        ("slo/store.py", "probe.model", True),
        ("slo/evaluator.py", "alerts.state", False),
        ("slo/app.py", "alerts.outbox", True),
        ("alerts/state.py", "slo.model", True),
        ("alerts/state.py", "slo.store", False),
        ("slo/api.py", "httpx", False),
    ],
)
def test_the_rule_checker_itself_tells_right_from_wrong(
    module: str, imported: str, allowed: bool
) -> None:
    assert (violation(module, imported) is None) is allowed
