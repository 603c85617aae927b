"""A captured response body, as far as it goes: content coding, media kind, text, partial JSON.

The probe keeps the first KiB of a body, de-chunked but still content-encoded, so everything here
works on a prefix: gzip and deflate are inflated as far as the bytes allow, text is decoded with a
replacement character for a multi-byte sequence the cut split, and JSON is parsed up to the last
complete member. Nothing here raises on any input; "cannot tell" is ``None`` or
``MediaKind.OTHER``, and the caller treats it as "not inspected".
"""

from __future__ import annotations

import codecs
import json
import re
import zlib
from collections.abc import Callable
from enum import StrEnum
from typing import Final

MAX_DECODED: Final = 2048
"""Inflate at most this much: twice what an uncompressed capture holds. It bounds a
decompression bomb, and the cost: inflating and scanning grow with it (a 1 KiB gzip capture
measured 13 µs at 1 KiB, 18 µs at 2 KiB, 24 µs at 4 KiB)."""


class MediaKind(StrEnum):
    JSON = "json"
    XML = "xml"
    HTML = "html"
    TEXT = "text"
    OTHER = "other"  # binary, or a coding we cannot undo


_MEDIA_TYPES: Final[dict[str, tuple[str, str | None]]] = {}  # a few distinct headers, parsed once


def media_type_of(content_type: str | None) -> tuple[str, str | None]:
    """``"Application/JSON; charset=UTF-8"`` → ``("application/json", "utf-8")``."""
    if not content_type:
        return "", None
    parsed = _MEDIA_TYPES.get(content_type)
    if parsed is None:
        media_type, _, params = content_type.partition(";")
        charset = None
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset":
                charset = value.strip().strip("\"'").lower() or None
        parsed = (media_type.strip().lower(), charset)
        if len(_MEDIA_TYPES) >= 256:
            _MEDIA_TYPES.clear()
        _MEDIA_TYPES[content_type] = parsed
    return parsed


def decode_content(body: bytes, coding: str | None, limit: int = MAX_DECODED) -> bytes | None:
    """Undo ``Content-Encoding`` as far as the (possibly cut) bytes go.

    Returns at most ``limit`` bytes, or None for a coding the standard library cannot undo
    (``br``, ``zstd``) or data that is not what the header claims.
    """
    if not coding:
        return body
    data = body
    for name in reversed([c.strip().lower() for c in coding.split(",") if c.strip()]):
        if name == "identity":
            continue
        if name in ("gzip", "x-gzip"):
            inflated = _inflate(data, 16 + zlib.MAX_WBITS, limit)
        elif name == "deflate":
            # RFC 9110 says zlib-wrapped; some servers send raw deflate anyway.
            inflated = _inflate(data, zlib.MAX_WBITS, limit)
            if inflated is None:
                inflated = _inflate(data, -zlib.MAX_WBITS, limit)
        else:
            return None
        if inflated is None:
            return None
        data = inflated
    return data


def _inflate(data: bytes, wbits: int, limit: int) -> bytes | None:
    inflater = zlib.decompressobj(wbits)
    try:
        return inflater.decompress(data, limit)
    except zlib.error:
        return None


_XML_START = re.compile(rb"\s*<(?:\?xml|[A-Za-z_][\w.-]*:?[\w.-]*[\s/>])")
_HTML_START = re.compile(rb"\s*<(?:!doctype\s+html|html|head|body|!--)", re.IGNORECASE)
_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_BOM_STARTS: Final = frozenset(bom[0] for bom, _ in _BOMS)  # first bytes, as ints


_JSON: Final = MediaKind.JSON  # a global: off its enum class a member costs ~40 ns more


def media_kind(media_type: str, data: bytes) -> MediaKind:
    """What the body is, from its media type, or from its first bytes when the type is vague."""
    if "json" in media_type:  # application/json, +json, x-ndjson, x-amz-json-1.1, ...
        return _JSON
    if media_type in ("text/html", "application/xhtml+xml"):
        return MediaKind.HTML
    if media_type.endswith(("/xml", "+xml")):
        return MediaKind.XML
    if media_type and media_type not in ("text/plain", "application/octet-stream"):
        return MediaKind.TEXT if media_type.startswith("text/") else MediaKind.OTHER
    return _sniff(data, media_type)


def _sniff(data: bytes, media_type: str) -> MediaKind:
    head = data[:64]
    codec = codec_of(head, None)
    if codec != "utf-8":  # a BOM, or the NUL bytes of UTF-16/32 without one
        head = head.decode(codec, "ignore").encode("utf-8", "ignore")
    first = head.lstrip()[:1]
    if first in (b"{", b"["):
        return MediaKind.JSON
    if first == b"<":
        if _HTML_START.match(head):
            return MediaKind.HTML
        if _XML_START.match(head):
            return MediaKind.XML
    if media_type == "text/plain":
        return MediaKind.TEXT
    return MediaKind.TEXT if _looks_like_text(data) else MediaKind.OTHER


_CONTROL_BYTES: Final = bytes([*range(9), *range(14, 32)])


def _looks_like_text(data: bytes) -> bool:
    """No NUL and at most 5 % other control bytes in the first 256 bytes."""
    sample = data[:256]
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    return b"\x00" not in sample and controls * 20 <= len(sample)


_CODECS: Final[dict[str, str]] = {}  # charset name → Python codec name


def codec_of(data: bytes, charset: str | None) -> str:
    """The codec to decode ``data`` with: a BOM wins, then the declared charset, then UTF-8."""
    # Bytes read as ints rather than sliced: compiled, an index is inline and a slice is a new
    # bytes object (this runs for every inspected body, where a BOM or a NUL is rare).
    if data and data[0] in _BOM_STARTS:
        for bom, encoding in _BOMS:
            if data.startswith(bom):
                return encoding
    if charset:
        codec = _CODECS.get(charset)
        if codec is None:
            try:
                codec = codecs.lookup(charset).name
            except LookupError:
                codec = "utf-8"
            if len(_CODECS) >= 256:
                _CODECS.clear()
            _CODECS[charset] = codec
        return codec
    for i in range(min(4, len(data))):
        if data[i] == 0:
            return json.detect_encoding(data)  # RFC 4627 null-byte patterns of UTF-16/32
    return "utf-8"


def ascii_compatible(codec: str) -> bool:
    """Whether ASCII text (JSON keys, XML tags) is encoded as ASCII bytes by ``codec``."""
    return not codec.startswith(("utf-16", "utf_16", "utf-32", "utf_32"))


def text_of(data: bytes, charset: str | None) -> str:
    """Decode ``data`` (see ``codec_of``), replacing what does not decode; never raises."""
    return data.decode(codec_of(data, charset), "replace")


# --- JSON as far as it goes ------------------------------------------------------------------

CUT_MEMBER: Final = "\u2026"
"""The key of the placeholder member of an object that was cut before its first member."""
CUT_MEMBER_JSON: Final = '"\\u2026":null'

_DECODER = json.JSONDecoder()
# The decoder's scanner (C where the interpreter has it): (value, end) of the value at an index.
# JSONDecoder.__init__ sets it; typeshed does not declare it.
_scan_once: Final[Callable[[str, int], tuple[object, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]
_JSON_WHITESPACE: Final = " \t\n\r"  # what json.loads lets follow a value
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"|[{}\[\],]')
_CLOSERS = {"{": "}", "[": "]"}


# Where a cut document can be closed (see scan_in_python): (safe_end, safe_depth, closers,
# in_string), or None when a bracket mismatches or closes the first value.
JsonCut = tuple[int, int, str, bool]


def parse_json_prefix(text: str) -> object | None:
    """The JSON value in ``text``, or as much of it as is complete when the text was cut.

    A cut document keeps every member and element that ended before the cut, with its open
    containers closed; a trailing scalar that may itself be cut (a string without its closing
    quote, a number at the very end) is dropped rather than guessed. A container cut before its
    first member holds a placeholder (``{"…": null}``, ``[null]``). Returns None when the text
    does not start with an object or array that parses this way.
    """
    start = len(text) - len(text.lstrip(" \t\r\n\ufeff"))
    if start == len(text) or text[start] not in "{[":
        return None
    body = text[start:] if start else text
    # A document that parses whole ends with its closing bracket: a cut one is not tried whole.
    if body.rstrip()[-1] in "}]":
        value = _loads(body)
        if value is not None:
            return value
    cut = _scan(body)
    if cut is None:  # the first value closes (or does not parse): something may follow it
        return _first_value(body)
    # Never closed, so neither json.loads nor raw_decode could take it: the scan says how far
    # it goes (a cut 3 KiB body was parsed three times over before it was scanned).
    return _repaired(body, cut)


def scan_in_python(text: str) -> JsonCut | None:
    """Where ``text``, a JSON document that may be cut, can be closed: its prefix
    ``text[:safe_end]`` closed with ``closers[:safe_depth]`` ends after a whole member or element,
    ``closers`` being what its open containers need, outermost first; ``in_string`` when it ends
    inside a string. None when a closing bracket does not match, or closes the first value. The
    reference for probe/_json_prefix.c."""
    stack: list[str] = []
    safe_end, safe_depth = 0, 0
    in_string = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        char = token[0]
        if char == '"':
            if len(token) == 1:  # an opening quote with no closing one: cut inside a string
                in_string = True
                break
            continue
        if char in _CLOSERS:
            stack.append(_CLOSERS[char])
            safe_end, safe_depth = match.end(), len(stack)
        elif char == ",":
            safe_end, safe_depth = match.start(), len(stack)
        else:
            if not stack or stack.pop() != char:
                return None  # mismatched brackets: not JSON
            safe_end, safe_depth = match.end(), len(stack)
            if not stack:
                return None  # the first value is complete
    return safe_end, safe_depth, "".join(stack), in_string


def _load_scan() -> Callable[[str], JsonCut | None]:
    try:
        from probe import _json_prefix
    except ImportError:  # BYTEWATCH_PURE_PYTHON=1, or run from a source tree never built
        return scan_in_python
    return _json_prefix.scan


_scan: Final = _load_scan()


def _repaired(text: str, cut: JsonCut) -> object | None:
    """The cut document ``text``, closed where ``cut`` says."""
    safe_end, safe_depth, closers, in_string = cut
    tail = text.rstrip()
    if not in_string and tail and tail[-1] not in "0123456789.-+,:":
        whole = _loads(_closed(tail, closers))  # it may end with a whole last member
        if whole is not None:
            return whole
    return _loads(_closed(text[:safe_end], closers[:safe_depth]))


def _closed(prefix: str, closers: str) -> str:
    """``prefix`` with its open containers closed; one cut before its first member gets a
    placeholder member, because ``"errors": [`` was about to hold something."""
    end = prefix.rstrip()[-1:]
    filler = CUT_MEMBER_JSON if end == "{" else "null" if end == "[" else ""
    return prefix + filler + closers[::-1]


def _loads(text: str) -> object | None:
    """``json.loads(text)`` for a text that starts with its value, as every caller's does, or
    None. It calls the decoder's scanner itself: json.loads's layers around it (decode,
    raw_decode, two regular expressions) cost ~0.9 us a call, more than the scan of a small
    document."""
    try:
        value, end = _scan_once(text, 0)
    except (StopIteration, ValueError, RecursionError):  # StopIteration: no value at all
        return None
    if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
        return None  # something follows the value
    return value


def _first_value(text: str) -> object | None:
    """One complete value followed by something else (NDJSON, trailing bytes)."""
    try:
        value: object = _scan_once(text, 0)[0]
    except (StopIteration, ValueError, RecursionError):
        return None
    return value
