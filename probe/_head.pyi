"""probe/_head.c: the common case of probe.http.parse_head and start_message."""

from collections.abc import Callable

from probe.http import HttpMessage, MessageHead, _Undecided

def configure(
    head_type: type[MessageHead], message_type: type[HttpMessage], undecided: _Undecided, /
) -> None: ...
def split_head(raw: bytes, end: int, /) -> MessageHead | None: ...
def header_framing(block_lower: str, /) -> int: ...
def start_message(
    data: bytes,
    length: int,
    ts_ns: int,
    body_limit: int,
    response_to: Callable[[], str | None] | None,
    /,
) -> HttpMessage | tuple[MessageHead, int] | _Undecided | None: ...
