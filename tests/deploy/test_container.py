"""The Containerfile, read statically (no container engine runs here): it parses, installs what
scripts/setup.sh installs, makes the venv the same way and starts `bytewatch run`. Its
entrypoint links kernel headers in when the host provides none, as setup.sh does."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.deploy.files import CONTAINERFILE, ROOT, SETUP_SCRIPT, SYSTEMD_UNIT

ENTRYPOINT_SCRIPT = CONTAINERFILE.parent / "entrypoint.sh"
INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        result.append((keyword, arguments.strip()))
        pending = ""
    assert not pending, "the file ends inside a continued line"
    return result


STEPS = instructions(CONTAINERFILE.read_text())


def arguments(keyword: str) -> list[str]:
    return [args for kw, args in STEPS if kw == keyword]


def runtime_packages() -> list[str]:
    """The packages scripts/setup.sh installs without --dev, from its `packages=(...)` line."""
    match = re.search(r"^packages=\((.*)\)$", SETUP_SCRIPT.read_text(), re.MULTILINE)
    assert match is not None, "setup.sh no longer lists its packages as packages=(...)"
    return shlex.split(match.group(1))


def test_every_line_is_a_known_instruction_and_the_base_is_debian_12() -> None:
    assert {keyword for keyword, _ in STEPS} <= INSTRUCTIONS
    assert STEPS[0][0] in {"FROM", "ARG"}
    (base,) = arguments("FROM")
    assert re.fullmatch(r"(docker\.io/library/)?debian:12(-slim)?", base)


@pytest.mark.parametrize("package", runtime_packages())
def test_it_installs_what_the_setup_script_installs(package: str) -> None:
    installs = [run for run in arguments("RUN") if "apt-get install" in run]
    assert installs, "no apt-get install"
    # setup.sh writes the headers' architecture as $arch; so may the image, braced or not.
    pattern = re.escape(package).replace(re.escape("$arch"), r"\$\{?arch\}?")
    assert any(re.search(rf"(?<![\w-]){pattern}(?![\w-])", run) for run in installs)


def test_the_venv_is_made_like_the_setup_scripts_with_bcc_linked_in() -> None:
    setup = SETUP_SCRIPT.read_text()
    assert '"$py" -m venv "$venv"' in setup and 'ln -sfn "$bcc_src" "$site/bcc"' in setup
    (run,) = [r for r in arguments("RUN") if "-m venv" in r]
    assert "/usr/bin/python3 -m venv /opt/bytewatch/.venv" in run
    assert 'ln -sfn "$bcc_src" "$site/bcc"' in run
    assert re.search(r"/opt/bytewatch/\.venv/bin/python -m pip install .* -e /opt/bytewatch", run)


def test_everything_it_copies_exists_in_the_repository() -> None:
    for copy in arguments("COPY"):
        *sources, _ = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), source


def test_it_starts_bytewatch_run_as_the_systemd_unit_does() -> None:
    (entrypoint,) = arguments("ENTRYPOINT")
    (cmd,) = arguments("CMD")
    argv = json.loads(entrypoint) + json.loads(cmd)  # exec form: no shell in between
    unit_exec = next(
        line.split("=", 1)[1]
        for line in SYSTEMD_UNIT.read_text().splitlines()
        if line.startswith("ExecStart=")
    )
    assert argv[1:] == unit_exec.split()
    assert argv[0] == "/usr/local/bin/bytewatch-entrypoint"
    assert "EXPOSE 9477" in {f"EXPOSE {a}" for a in arguments("EXPOSE")}


def test_the_entrypoint_is_valid_shell() -> None:
    subprocess.run(["sh", "-n", str(ENTRYPOINT_SCRIPT)], check=True, timeout=30)
    assert os.access(ENTRYPOINT_SCRIPT, os.X_OK)


def run_entrypoint(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MODULES_DIR": str(tmp_path / "lib" / "modules"),
        "HEADERS_DIR": str(tmp_path / "usr" / "src"),
    }
    return subprocess.run(
        ["sh", str(ENTRYPOINT_SCRIPT), *command],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def debian_headers(tmp_path: Path, arch: str) -> Path:
    src = tmp_path / "usr" / "src"
    headers = src / f"linux-headers-6.1.0-99-{arch}"
    (headers / "include").mkdir(parents=True)
    (src / "linux-headers-6.1.0-99-common" / "include").mkdir(parents=True)
    return headers


def architecture() -> str:
    result = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "amd64"


def test_the_entrypoint_links_the_images_headers_when_the_host_has_none(tmp_path: Path) -> None:
    headers = debian_headers(tmp_path, architecture())
    result = run_entrypoint(tmp_path, "sh", "-c", "exit 7")
    build = tmp_path / "lib" / "modules" / platform.release() / "build"
    assert result.returncode == 7  # the command's own status: it was exec'd
    assert build.resolve() == headers
    assert (build / "include").is_dir()
    assert f"using {headers}" in result.stderr


def test_the_entrypoint_leaves_the_hosts_headers_alone(tmp_path: Path) -> None:
    debian_headers(tmp_path, architecture())
    host_build = tmp_path / "lib" / "modules" / platform.release() / "build"
    (host_build / "include").mkdir(parents=True)
    result = run_entrypoint(tmp_path, "true")
    assert (result.returncode, result.stderr) == (0, "")
    assert not host_build.is_symlink()


def test_the_entrypoint_says_when_there_are_no_headers_at_all_and_runs_anyway(
    tmp_path: Path,
) -> None:
    result = run_entrypoint(tmp_path, "echo", "ran")
    assert result.returncode == 0 and result.stdout == "ran\n"
    assert "no kernel headers" in result.stderr
