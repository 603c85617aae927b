"""probe/_records.c: probe.abi.decode_records in C."""

import mmap
from enum import IntEnum
from typing import TypeVar

from probe.abi import Record

_T = TypeVar("_T", bound=tuple[object, ...])

HEADER_SIZE: int
DATA_MAX: int

def configure(
    record_type: type[Record],
    kinds: tuple[IntEnum | None, ...],
    directions: tuple[IntEnum | None, ...],
    roles: tuple[IntEnum | None, ...],
    error_type: type[Exception],
    /,
) -> None: ...
def decode_records(raw: bytes, /) -> tuple[Record, ...]: ...
def drain(
    data: mmap.mmap, consumer: mmap.mmap, mask: int, limit: int = 0, /
) -> tuple[list[Record], int]: ...
def build(cls: type[_T], /, *fields: object) -> _T: ...
