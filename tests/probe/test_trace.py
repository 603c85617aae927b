"""``bytewatch trace``'s pure parts (the command itself runs in tests/probe/test_live.py)."""

from __future__ import annotations

from probe.source import ProbeStats
from probe.trace import summary


def test_the_closing_summary_names_http2_connections_only_when_there_were_some() -> None:
    assert "HTTP/2" not in summary(ProbeStats(exchanges=3))
    with_http2 = summary(ProbeStats(exchanges=3, http2_connections=2))
    assert with_http2.startswith("exchanges 3, ")
    assert with_http2.endswith(", HTTP/2 connections not decoded 2")
