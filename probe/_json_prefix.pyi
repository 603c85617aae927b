"""probe/_json_prefix.c: probe.body.scan_in_python in one pass."""

from probe.body import JsonCut

def scan(text: str, /) -> JsonCut | None: ...
