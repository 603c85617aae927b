"""The systemd unit runs the agent with exactly the documented capabilities, never as full root,
with its secrets as credentials and hardening that leaves the probe working."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from probe.doctor import TRACEFS_DIRS, missing_privilege
from slo.settings import StoreSettings
from tests.ci import skip_or_fail
from tests.deploy.files import CAPABILITIES, EXAMPLE_CONFIG, SYSTEMD_UNIT, secret_refs

# include/uapi/linux/capability.h
CAPABILITY_NUMBERS = {
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_RESOURCE": 24,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
}


def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every assignment, in order; keys may repeat, as in systemd."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"not an assignment: {line!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


ENTRIES = unit_entries(SYSTEMD_UNIT.read_text())


def values(key: str, section: str = "Service") -> list[str]:
    return [v for s, k, v in ENTRIES if s == section and k == key]


def value(key: str, section: str = "Service") -> str:
    found = values(key, section)
    assert len(found) == 1, f"{key}= is set {len(found)} times"
    return found[0]


@pytest.mark.parametrize("key", ["CapabilityBoundingSet", "AmbientCapabilities"])
def test_the_agent_gets_exactly_the_documented_capabilities(key: str) -> None:
    assert set(value(key).split()) == CAPABILITIES


def test_every_capability_is_explained_in_a_comment() -> None:
    comments = [line for line in SYSTEMD_UNIT.read_text().splitlines() if line.startswith("#")]
    for capability in CAPABILITIES:
        assert any(re.match(rf"#\s+{capability}\s+\S", line) for line in comments), capability


def test_the_agent_is_a_dynamic_user_not_root() -> None:
    assert value("DynamicUser") == "yes"
    assert not values("User") or value("User") not in {"root", "0"}
    assert "CAP_SYS_ADMIN" not in value("CapabilityBoundingSet")


def test_the_capabilities_are_enough_for_bytewatch_doctor_and_none_is_spare_among_bpf_ones() -> (
    None
):
    mask = sum(1 << CAPABILITY_NUMBERS[name] for name in CAPABILITIES)
    assert missing_privilege(euid=61234, cap_eff=mask) is None
    for needed in ("CAP_BPF", "CAP_PERFMON"):
        without = mask & ~(1 << CAPABILITY_NUMBERS[needed])
        assert missing_privilege(euid=61234, cap_eff=without) is not None


def test_it_runs_bytewatch_from_the_setup_scripts_venv_with_the_config_in_etc() -> None:
    assert value("ExecStart") == (
        "/opt/bytewatch/.venv/bin/bytewatch run --config /etc/bytewatch/bytewatch.yaml"
    )
    assert value("ConfigurationDirectory") == "bytewatch"


def test_tracefs_and_debugfs_are_mounted_with_full_privileges_before_start_only() -> None:
    pre = values("ExecStartPre")
    tracefs = str(TRACEFS_DIRS[0])
    assert any("mount -t tracefs" in line and tracefs in line for line in pre)
    assert any("mount -t debugfs" in line and "/sys/kernel/debug" in line for line in pre)
    assert all(line.startswith("+") for line in pre)  # "+": full privileges, this line only
    after = value("After", "Unit").split()
    assert {"sys-kernel-tracing.mount", "sys-kernel-debug.mount"} <= set(after)


def test_the_state_directory_holds_the_default_store() -> None:
    assert value("StateDirectory") == "bytewatch"
    assert StoreSettings().path.parent == Path("/var/lib/bytewatch")


def test_secrets_are_credentials_and_the_credentials_directory_is_the_secrets_directory() -> None:
    assert "BYTEWATCH_SECRETS_DIR=%d" in values("Environment")
    loaded = {entry.split(":", 1)[0] for entry in values("LoadCredential")}
    used = set(secret_refs(yaml.safe_load(EXAMPLE_CONFIG.read_text())))
    assert used <= loaded
    assert loaded - used == {"api__token"}  # a setting, not a reference


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param("NoNewPrivileges", "yes", id="no new privileges"),
        pytest.param("ProtectSystem", "strict", id="a read-only system"),
        pytest.param("ProtectHome", "yes", id="no home directories"),
        pytest.param("PrivateTmp", "yes", id="a private tmp"),
        pytest.param("ProtectProc", "default", id="every process stays visible"),
    ],
)
def test_hardening_is_on_where_it_leaves_the_probe_working(key: str, expected: str) -> None:
    assert value(key) == expected


@pytest.mark.parametrize("key", ["ProtectKernelModules", "MemoryDenyWriteExecute", "ProcSubset"])
def test_hardening_that_would_break_bcc_is_off(key: str) -> None:
    assert values(key) == []


def test_systemd_accepts_every_directive(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        skip_or_fail("systemd-analyze is not installed (Debian's systemd package)")
    # The agent is not installed here: point ExecStart at a program that exists.
    unit = tmp_path / "bytewatch.service"
    unit.write_text(
        SYSTEMD_UNIT.read_text().replace("/opt/bytewatch/.venv/bin/bytewatch", "/bin/true")
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
