"""Reading the deployment files the way their tools do, for the tests beside this module."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SETUP_SCRIPT = ROOT / "scripts" / "setup.sh"
DOCTOR = ROOT / "probe" / "doctor.py"
SYSTEMD_UNIT = DEPLOY / "systemd" / "bytewatch.service"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
EXAMPLE_CONFIG = DEPLOY / "examples" / "bytewatch.yaml"

# The capabilities the agent runs with, and why, as deploy/systemd/bytewatch.service documents.
CAPABILITIES = frozenset(
    {
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_DAC_READ_SEARCH",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_PTRACE",
        "CAP_SYS_NICE",
    }
)


def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kubernetes_objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object under deploy/kubernetes by (kind, name), the Kustomization aside."""
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in yaml_documents(path):
            if doc.get("kind") != "Kustomization":
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def secret_refs(node: object) -> Iterator[str]:
    """The names of every ``{secret: NAME}`` reference in a parsed YAML document."""
    if isinstance(node, dict):
        if set(node) == {"secret"} and isinstance(node["secret"], str):
            yield node["secret"]
            return
        for value in node.values():
            yield from secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from secret_refs(item)


def write_secrets(directory: Path, values: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        (directory / name).write_text(value + "\n")
    return directory


def host_paths_the_probe_needs() -> set[str]:
    """The host paths scripts/setup.sh prepares and probe/doctor.py checks, read from them:
    absolute paths under /sys, /lib and /usr, cut before the first variable or glob."""
    found: set[str] = set()
    for source in (SETUP_SCRIPT, DOCTOR):
        text = source.read_text()
        for match in re.finditer(r"""["'( ](/(?:sys|lib|usr)/[A-Za-z0-9_./-]*)(.?)""", text):
            path, after = match.group(1), match.group(2)
            if path.startswith(("/usr/sbin/", "/usr/bin/")):
                continue  # programs the script runs, not what the probe reads
            if after in {"*", "$"}:  # cut inside a name (linux-headers-*): keep its directory
                path = path.rsplit("/", 1)[0]
            found.add(path.rstrip("/"))
    return found
