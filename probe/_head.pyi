"""probe/_head.c: the common case of probe.http.parse_head."""

from probe.http import HeadFields

def split_head(raw: bytes, end: int, /) -> HeadFields | None: ...
