"""The compact row encoding of ``Counts``: what keeps 30 days of 1,000 endpoints small.

A row's ``data`` blob is a run of unsigned LEB128 varints::

    total, server_errors, business_errors,
    n, the first n non-cumulative latency bucket counts,
    m, the first m non-cumulative clean-latency bucket counts

Non-cumulative counts are small and mostly zero (requests crowd into a few buckets), so most
take one byte; trailing zero buckets are not written at all (``n``, ``m`` say how many were).
The +Inf buckets are implied by ``total`` and by the clean total (total minus both kinds of
errors). The bounds themselves are stored once per distinct set, by id, beside the blob.

Business error types go in a second, usually absent blob: (type id, count) pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate

from slo.model import Counts


class CorruptRow(ValueError):
    """A stored blob does not decode (the file was damaged or written by something else)."""


def pack_varints(values: Iterable[int]) -> bytes:
    """Unsigned LEB128; one byte per value below 128."""
    values = list(values)
    if all(0 <= v < 0x80 for v in values):
        return bytes(values)
    out = bytearray()
    for value in values:
        if value < 0:
            raise ValueError(f"cannot encode a negative count ({value})")
        rest = value
        while rest >= 0x80:
            out.append((rest & 0x7F) | 0x80)
            rest >>= 7
        out.append(rest)
    return bytes(out)


def unpack_varints(blob: bytes) -> list[int]:
    if not blob or max(blob) < 0x80:
        return list(blob)  # every value took one byte: decoded at C speed
    out: list[int] = []
    value = shift = 0
    for byte in blob:
        if byte < 0x80:
            out.append(value | (byte << shift))
            value = shift = 0
        else:
            value |= (byte & 0x7F) << shift
            shift += 7
    if shift:
        raise CorruptRow("a varint runs past the end of its blob")
    return out


def _differences(cumulative: Sequence[int]) -> list[int]:
    out: list[int] = []
    previous = 0
    for value in cumulative:
        out.append(value - previous)
        previous = value
    while out and out[-1] == 0:
        out.pop()
    return out


def encode_counts(counts: Counts) -> bytes:
    latency = _differences(counts.latency_le)
    clean = _differences(counts.clean_le)
    return pack_varints(
        (
            counts.total,
            counts.server_errors,
            counts.business_errors,
            len(latency),
            *latency,
            len(clean),
            *clean,
        )
    )


def decode_counts(blob: bytes, bounds: tuple[float, ...]) -> Counts:
    """The counts of a ``data`` blob (without error types, which live in their own blob)."""
    values = unpack_varints(blob)
    size = len(bounds)
    try:
        total, server, business, n = values[0], values[1], values[2], values[3]
        latency_end = 4 + n
        m = values[latency_end]
        clean_end = latency_end + 1 + m
    except IndexError as exc:
        raise CorruptRow("a counts blob ends early") from exc
    if n > size or m > size or clean_end != len(values):
        raise CorruptRow(f"a counts blob does not fit {size} latency bounds")
    return Counts(
        bounds,
        total,
        server,
        business,
        _cumulative(values, 4, latency_end, size),
        _cumulative(values, latency_end + 1, clean_end, size),
    )


def _cumulative(values: list[int], start: int, end: int, size: int) -> tuple[int, ...]:
    out = list(accumulate(values[start:end]))
    if len(out) < size:
        out.extend([out[-1] if out else 0] * (size - len(out)))
    return tuple(out)


def encode_error_types(
    error_types: Iterable[tuple[str, int]], type_id: Callable[[str], int]
) -> bytes | None:
    pairs = [v for name, count in error_types if count for v in (type_id(name), count)]
    return pack_varints(pairs) if pairs else None


def decode_error_types(
    blob: bytes | None, type_name: Callable[[int], str]
) -> tuple[tuple[str, int], ...]:
    if not blob:
        return ()
    values = unpack_varints(blob)
    if len(values) % 2:
        raise CorruptRow("an error-types blob has an odd number of values")
    return tuple((type_name(values[i]), values[i + 1]) for i in range(0, len(values), 2))
