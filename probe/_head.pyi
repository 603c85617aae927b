"""probe/_head.c: the common case of probe.http.parse_head and start_in_python."""

from collections.abc import Callable

from probe.http import HttpMessage, MessageHead, StartInC, _Undecided

def configure(
    head_type: type[MessageHead],
    message_type: type[HttpMessage],
    undecided: _Undecided,
    header_value_reference: Callable[[str, str], str | None],
    /,
) -> None: ...
def split_head(raw: bytes, end: int, /) -> MessageHead | None: ...
def header_framing(block: str, /) -> int: ...
def header_value(block: str, name: str, /) -> str | None: ...

start_message: StartInC
