"""probe/_head.c: the common case of probe.http.parse_head and start_in_python."""

from probe.http import HttpMessage, MessageHead, StartInC, _Undecided

def configure(
    head_type: type[MessageHead], message_type: type[HttpMessage], undecided: _Undecided, /
) -> None: ...
def split_head(raw: bytes, end: int, /) -> MessageHead | None: ...
def header_framing(block_lower: str, /) -> int: ...

start_message: StartInC
