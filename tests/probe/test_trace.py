"""``bytewatch trace``'s pure parts (the command itself runs in tests/probe/test_live.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.source import ProbeStats
from probe.trace import summary
from slo.cli import main


def test_the_closing_summary_names_http2_connections_only_when_there_were_some() -> None:
    assert "HTTP/2" not in summary(ProbeStats(exchanges=3))
    with_http2 = summary(ProbeStats(exchanges=3, http2_connections=2))
    assert with_http2.startswith("exchanges 3, ")
    assert with_http2.endswith(", HTTP/2 connections not decoded 2")


def test_the_closing_summary_names_io_uring_operations_only_when_there_were_some() -> None:
    assert "io_uring" not in summary(ProbeStats(exchanges=3))
    with_io_uring = summary(ProbeStats(exchanges=3, io_uring_operations=5))
    assert with_io_uring.endswith(", io_uring socket operations not decoded 5")


def test_a_config_file_with_a_typo_stops_trace_before_the_probe_with_its_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "bytewatch.yaml"
    config.write_text("services:\n  - name_from: oetl\n")
    assert main(["trace", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bytewatch trace: {config}:2:")
    assert "services[0].name_from: expected one of otel, systemd" in err
