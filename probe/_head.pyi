"""probe/_head.c: the common case of probe.http.parse_head."""

HeadFields = tuple[bool, str, str, int, str, str, str, int]

def split_head(raw: bytes, end: int, /) -> HeadFields | None: ...
