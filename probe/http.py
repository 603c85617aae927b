"""Incremental HTTP/1.x parsing of one direction of a connection, with holes.

The kernel copies only the first bytes of each message (its capture budget) but counts every
byte, so a direction of a connection arrives as a byte stream with gaps of known length. The
``StreamParser`` places each captured segment at its stream offset, parses start lines, headers
and chunked framing, skips body bytes it was only told about, and finishes a message when its
last byte has passed, with the kernel timestamp of the syscall that carried that byte.

Garbage (bytes that are not HTTP where a message should start) is counted and skipped until the
kernel flags the next segment as a message start; nothing here ever raises on input bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import Final, NamedTuple

from probe.model import build

MAX_HEAD_BYTES: Final = 16 * 1024
MAX_HEADERS: Final = 100
DEFAULT_BODY_LIMIT: Final = 1024

Headers = tuple[tuple[str, str], ...]

_METHODS: Final = frozenset(
    {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "TRACE"}
    # A cache's PURGE, and WebDAV's, CalDAV's and CardDAV's (probe/_head.c and the kernel's
    # start_token know the same list).
    | {"PURGE", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT"}
)
_START_PREFIXES: Final = (*(m.encode() + b" " for m in _METHODS), b"HTTP/1.")
_LONGEST_PREFIX: Final = max(len(prefix) for prefix in _START_PREFIXES)
_TOKEN_CHARS: Final = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def looks_like_start(data: bytes) -> bool:
    """Whether ``data`` begins with an HTTP/1.x request or status line (as the kernel checks)."""
    return data.startswith(_START_PREFIXES)


class MessageHead(NamedTuple):
    """A parsed start line and its header block.

    Headers stay as the validated text block and are looked up on demand: a message is usually
    asked for two or three headers, and splitting all of them costs more than the rest of the
    parse together.
    """

    is_request: bool
    method: str  # requests only, upper case
    target: str  # requests only, as sent
    status: int  # responses only
    version: str  # "HTTP/1.1"
    block: str  # "\r\nName: value\r\n...\r\n", latin-1 decoded
    size: int  # bytes of the start line, headers and the blank line

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case), or None."""
        return _header_value(self.block, name)

    @property
    def headers(self) -> Headers:
        """Every header as (lower-case name, value), in order."""
        return tuple([(name.lower(), value) for name, value in _HEADER_LINE.findall(self.block, 2)])


class HttpMessage(NamedTuple):
    """A request or response with its timing, wire size and the first bytes of its body.

    ``body`` is de-chunked but still content-encoded, cut at the parser's body limit.
    ``complete`` is false when the connection ended before the message did.
    """

    head: MessageHead
    start_ns: int
    end_ns: int
    size: int
    body: bytes
    body_truncated: bool
    complete: bool = True


_HTTP_MESSAGE: Final = HttpMessage  # built per message: a Final alias is a C static (DEVELOPERS.md)


class ParseError(ValueError):
    """Bytes that cannot be an HTTP/1.x message head (never escapes this module)."""


_HEADER_NAME = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_HEADER_LINE: Final = re.compile(rf"({_HEADER_NAME}):[ \t]*([^\r\n]*?)[ \t]*\r\n")


class _Undecided:
    """What probe/_head.c's start_message answers where the Python reference must decide."""


_UNDECIDED: Final = _Undecided()
# probe/_head.c's start_message: start_in_python's answer, or _UNDECIDED.
StartInC = Callable[
    [bytes, int, int, int, Callable[[], str | None] | None],
    HttpMessage | tuple[MessageHead, int] | _Undecided | None,
]


def header_value_in_python(block: str, name: str) -> str | None:
    """The first value of header ``name`` (lower case) in a head's ``block``, or None. The
    reference for probe/_head.c's ``header_value``, which compares the names lower-cased as it
    reads them instead of lower-casing the block."""
    needle = f"\r\n{name}:"
    at = block.lower().find(needle)
    if at < 0:
        return None
    start = at + len(needle)
    return block[start : block.find("\r\n", start)].strip(" \t")


def _load_head_extension() -> tuple[
    Callable[[bytes, int], MessageHead | None] | None,
    Callable[[str], int] | None,
    StartInC | None,
    Callable[[str, str], str | None] | None,
]:
    """probe/_head.c's split_head, header_framing, start_message and header_value, where it was
    built."""
    try:
        from probe import _head
    except ImportError:  # BYTEWATCH_PURE_PYTHON=1, or run from a source tree never built
        return None, None, None, None
    _head.configure(MessageHead, HttpMessage, _UNDECIDED, header_value_in_python)
    return _head.split_head, _head.header_framing, _head.start_message, _head.header_value


_HEAD_EXTENSION: Final = _load_head_extension()
_split_head: Final = _HEAD_EXTENSION[0]
_header_framing: Final = _HEAD_EXTENSION[1]
_start_in_c: Final = _HEAD_EXTENSION[2]
_header_value: Final = _HEAD_EXTENSION[3] or header_value_in_python


def parse_head(raw: bytes, end: int = -1) -> MessageHead:
    """Parse a complete head (ending with the blank line) or raise ``ParseError``."""
    if _split_head is not None:
        head = _split_head(raw, end)
        if head is not None:
            return head
    return parse_head_in_python(raw, end)


def parse_head_in_python(raw: bytes, end: int = -1) -> MessageHead:
    """``parse_head`` without the extension: the reference it is tested against, and the one
    that says what is wrong with a head the extension leaves to it."""
    if end < 0:  # the caller may already know where the blank line is
        end = raw.find(b"\r\n\r\n")
    if end < 0:
        raise ParseError("head does not end with a blank line")
    text = raw[: end + 2].decode("latin-1")  # latin-1 maps every byte: never fails
    line_end = text.find("\r\n")
    start = text[:line_end]
    parts = start.split(" ", 2)
    if len(parts) < 2:
        raise ParseError(f"malformed start line {start[:40]!r}")
    if parts[0].startswith("HTTP/1."):
        version = parts[0]
        if len(version) != 8 or version[7] not in "01":
            raise ParseError(f"unknown version {version[:12]!r}")
        code = parts[1]
        # isdigit alone takes latin-1's superscripts, which int() then refuses with a ValueError.
        if len(code) != 3 or not (code.isascii() and code.isdigit()):
            raise ParseError(f"malformed status code {code[:8]!r}")
        is_request, method, target, status = False, "", "", int(code)
    else:
        if len(parts) != 3:
            raise ParseError(f"malformed request line {start[:40]!r}")
        method, target, version = parts
        if method not in _METHODS:
            raise ParseError(f"unknown method {method[:16]!r}")
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise ParseError(f"unknown version {version[:12]!r}")
        # Visible ASCII only (%x21-7E; a space cannot be in it after the split). Two C calls
        # instead of a regex match: this runs for every request.
        if not (target and target.isascii() and target.isprintable()):
            raise ParseError("malformed request target")
        is_request, status = True, 0
    block = text[line_end:]
    # Every header line holds a colon and no NUL: counting is a C loop, where a regex over the
    # block cost a third of the whole parse. Lines are checked one by one only when needed.
    lines = block.count("\r\n") - 1
    if "\x00" in block or block.count(":") < lines or block.count("\n") != lines + 1:
        raise ParseError("malformed header block")
    if lines > MAX_HEADERS:
        raise ParseError("too many headers")
    return build(MessageHead, is_request, method, target, status, version, block, end + 4)


_CHUNKED: Final = -1
_UNTIL_CLOSE: Final = -2
_BAD_LENGTH: Final = -3
_NO_LENGTH: Final = -4  # neither header: no body for a request, a body until close for a response
_ASK: Final = -5  # probe/_head.c leaves an unusual Content-Length to Python's int()


def header_framing_in_python(block: str) -> int:
    """What a head's header block says of its body: a length, CHUNKED, BAD_LENGTH or
    NO_LENGTH. The reference for probe/_head.c's ``header_framing``."""
    # Two finds in the lower-cased block rather than a regex and two ``header`` calls. A value
    # is read from it too, which only changes letters ("chunked" is compared lower-cased, a
    # length has none).
    block_lower = block.lower()
    at = block_lower.find("\r\ntransfer-encoding:")
    if at >= 0:
        at += 20
        if "chunked" in block_lower[at : block_lower.find("\r\n", at)]:
            return _CHUNKED
    at = block_lower.find("\r\ncontent-length:")
    if at < 0:
        return _NO_LENGTH
    at += 17
    try:
        length = int(block_lower[at : block_lower.find("\r\n", at)])  # int() strips whitespace
    except ValueError:
        return _BAD_LENGTH
    return length if length >= 0 else _BAD_LENGTH


def framing_of(head: MessageHead, response_to: Callable[[], str | None] | None) -> int:
    """How the body of ``head`` ends: its length (0 for none), CHUNKED, UNTIL_CLOSE or
    BAD_LENGTH. ``response_to`` names the method a response answers (HEAD's have no body)."""
    status = head.status
    if not head.is_request:
        if 100 <= status < 200 or status in (204, 304):
            return 0
        method = response_to() if response_to is not None else None
        if method == "HEAD" or (method == "CONNECT" and 200 <= status < 300):
            return 0
    framing = _header_framing(head.block) if _header_framing is not None else _ASK
    if framing == _ASK:
        framing = header_framing_in_python(head.block)
    if framing == _NO_LENGTH:
        return 0 if head.is_request else _UNTIL_CLOSE
    return framing


def start_in_python(
    data: bytes,
    length: int,
    ts_ns: int,
    body_limit: int,
    response_to: Callable[[], str | None] | None,
) -> HttpMessage | tuple[MessageHead, int] | None:
    """The bytes of a syscall that starts a message (``data``, the captured prefix of its
    ``length``), taken in one step: the whole message when the syscall carried all of it (its
    body perhaps cut by the capture), else the head and how its body ends. None when the head
    is not all here or is not HTTP. The reference for probe/_head.c's ``start_message``."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    try:
        head = parse_head(data, end)
    except ParseError:
        return None
    framing = framing_of(head, response_to)
    size = head.size
    if framing >= 0 and size + framing == length:
        body = data[size : size + body_limit]
        return build(HttpMessage, head, ts_ns, ts_ns, length, body, framing > len(body), True)
    return head, framing


class _State(Enum):
    IDLE = auto()  # between messages
    HEAD = auto()  # collecting a head
    LENGTH = auto()  # body with a known length
    CHUNK_SIZE = auto()  # chunked: reading a chunk-size line
    CHUNK_DATA = auto()  # chunked: inside a chunk
    CHUNK_CRLF = auto()  # chunked: the CRLF after a chunk
    TRAILERS = auto()  # chunked: trailer lines up to the blank line
    UNTIL_CLOSE = auto()  # body delimited by the end of the connection
    LOST = auto()  # chunk framing fell into a hole: the end is known only from outside
    SKIP = auto()  # garbage or a lost start: wait for the next flagged start


# Reading an enum member off its class costs ~40 ns on Python 3.11 against ~8 for a global: the
# states tested for every record are kept as module constants.
_IDLE: Final = _State.IDLE
_BETWEEN_MESSAGES: Final = (_State.IDLE, _State.SKIP)


@dataclass(slots=True)
class ParserStats:
    """Counts for the probe's own metrics; owned by the connection tracker."""

    parse_errors: int = 0
    lost_starts: int = 0  # a message start fell into a gap the kernel did not copy
    cut_heads: int = 0  # heads longer than the bytes copied: kept up to the cut, framing unknown


class StreamParser:
    """One direction of one connection.

    ``response_to`` tells a response parser which request method it is answering (responses to
    HEAD have no body); it returns None when no request is known.
    """

    __slots__ = (
        "_body",
        "_body_len",
        "_body_limit",
        "_chunk_left",
        "_cut",
        "_head",
        "_line",
        "_msg_start",
        "_remaining",
        "_response_to",
        "_start_ns",
        "_state",
        "_stats",
        "pos",
    )

    def __init__(
        self,
        stats: ParserStats,
        *,
        body_limit: int = DEFAULT_BODY_LIMIT,
        response_to: Callable[[], str | None] | None = None,
    ) -> None:
        self._stats = stats
        self._body_limit = body_limit
        self._response_to = response_to
        self.pos = -1  # stream offset of the next byte expected; -1 until the first segment
        self._state = _State.IDLE
        self._line = bytearray()  # head or chunk-size/trailer line being collected
        self._head: MessageHead | None = None
        self._msg_start = 0  # stream offset of the current message's first byte
        self._start_ns = 0
        self._remaining = 0  # LENGTH: body bytes still to come
        self._chunk_left = 0
        self._body = bytearray()
        self._body_len = 0  # de-chunked body bytes seen (captured or not)
        self._cut = False  # the head was kept to where the capture budget cut it

    # ---- what the tracker asks -------------------------------------------------------------

    @property
    def in_message(self) -> bool:
        return self._state not in _BETWEEN_MESSAGES

    @property
    def awaiting_end(self) -> bool:
        """True when the end of the current message can only be learnt from byte totals."""
        # A head kept to its cut ends only at a start in either direction, the close or (a
        # response's) a long silence: asking the kernel for totals every 100 ms would not end it.
        return (
            self._state in (_State.LENGTH, _State.LOST, _State.UNTIL_CLOSE)
            and (self._state is not _State.LENGTH or self._remaining > 0)
            and not self._cut
        )

    @property
    def head_cut(self) -> bool:
        """True while the current message's head is cut, or may be: kept to where the capture
        budget ran out (its framing unknown), or still being collected, when the budget may
        have run out exactly where a syscall ended. Such a message ends at a start either way,
        at the close, or after a silence (``settle_lost``)."""
        return (self._cut and self._state is _State.LOST) or self._state is _State.HEAD

    @property
    def current_head(self) -> MessageHead | None:
        return self._head if self.in_message else None

    @property
    def current_start_ns(self) -> int:
        return self._start_ns

    def resync(self) -> None:
        """Records were lost: forget the current message and wait for the next start line."""
        self._reset()
        self._state = _State.SKIP
        self.pos = -1

    # ---- input ---------------------------------------------------------------------------------

    def feed(
        self, offset: int, data: bytes, length: int, ts_ns: int, flagged_start: bool
    ) -> list[HttpMessage]:
        """Place one syscall's bytes: ``data`` is the captured prefix of its ``length`` bytes."""
        if self.pos < 0:
            self.pos = offset
        if (
            flagged_start
            and offset == self.pos
            and self._state is _IDLE
            and (started := self._start(data, length, ts_ns)) is not None
        ):
            return started
        out: list[HttpMessage] = []
        if offset > self.pos:
            self._gap(offset - self.pos, ts_ns, flagged_start, out)
        elif offset < self.pos:
            # Bytes we have already placed: keep only what is new.
            overlap = self.pos - offset
            if overlap >= length:
                return out
            data = data[overlap:]
            length -= overlap
            offset = self.pos
            flagged_start = False
        if flagged_start:
            if self._state is _State.SKIP:
                self._state = _State.IDLE
            elif self._state is _State.LOST:
                # Lost framing ends where the kernel saw the next start line; the exact time of
                # the last byte before it is unknown, so this syscall's time bounds it.
                self._finish(ts_ns, out)
        if data:
            self._bytes(data, ts_ns, out)
        cut = length - len(data)
        if cut > 0:
            self._gap(cut, ts_ns, False, out)
        return out

    def settle(self, total: int, last_ns: int) -> list[HttpMessage]:
        """The kernel says ``total`` bytes have passed this direction, the last at ``last_ns``.

        Finishes a message whose remaining body lay in bytes that were counted but not copied.
        Never moves past the end of the current message: what follows it will arrive as records.
        """
        out: list[HttpMessage] = []
        if self.pos < 0 or total <= self.pos:
            return out
        if self._state is _State.LENGTH and self.pos + self._remaining <= total:
            self._body_len += self._remaining
            self.pos += self._remaining
            self._remaining = 0
            self._finish(last_ns, out)
        return out

    def settle_lost(self, total: int, last_ns: int) -> list[HttpMessage]:
        """The other side has moved on (a new request, say): a message with lost framing is over."""
        out: list[HttpMessage] = []
        self._head_cut_unsaid(total, last_ns, out)
        if self._state is _State.LOST and total >= self.pos:
            self.pos = total
            self._finish(last_ns, out)
            # Where it really ended is still unknown: bytes that come before the next start
            # are its rest (an upload's body, read after an early 413), not garbage.
            self._state = _State.SKIP
        return out

    def settle_chunked_tail(self, total: int, last_ns: int, tail: bytes) -> list[HttpMessage]:
        """A chunked body whose framing was lost ends when its last bytes are the last chunk."""
        if self._state is _State.LOST and tail.endswith(b"0\r\n\r\n"):
            return self.settle_lost(total, last_ns)
        return []

    def close(self, total: int, last_ns: int) -> list[HttpMessage]:
        """The connection is gone: finish what is delimited by its end, and give up on the rest."""
        out = self.settle(total, last_ns)
        self._head_cut_unsaid(total, last_ns, out)
        if total > self.pos >= 0 and self._state is _State.UNTIL_CLOSE:
            self._body_len += total - self.pos
            self.pos = total
        if self._state in (_State.UNTIL_CLOSE, _State.LOST):
            self.pos = max(self.pos, total)
            self._finish(last_ns, out)
        elif (
            self._state
            in (
                _State.HEAD,
                _State.LENGTH,
                _State.CHUNK_SIZE,
                _State.CHUNK_DATA,
                _State.CHUNK_CRLF,
                _State.TRAILERS,
            )
            and self._head is not None
        ):
            self.pos = max(self.pos, total)
            self._finish(last_ns, out, complete=False)
        self._state = _State.SKIP
        return out

    def _head_cut_unsaid(self, total: int, last_ns: int, out: list[HttpMessage]) -> None:
        """Bytes counted that no record brought while a head is collected: the capture budget ran
        out exactly where a syscall ended, so no record was flagged cut, and the syscalls after
        it send none. The head was cut there."""
        if self._state is _State.HEAD and total > self.pos >= 0:
            self._gap(total - self.pos, last_ns, False, out)

    # ---- the state machine --------------------------------------------------------------------

    def _gap(self, n: int, ts_ns: int, next_is_start: bool, out: list[HttpMessage]) -> None:
        """``n`` bytes passed that were counted but not copied."""
        state = self._state
        if state is _State.LENGTH:
            if n < self._remaining:
                self._remaining -= n
                self._body_len += n
                self.pos += n
                return
            used = self._remaining
            self._body_len += used
            self.pos += used
            self._remaining = 0
            self._finish(ts_ns, out)
            n -= used
            if n == 0:
                return
            state = self._state
        if state is _State.UNTIL_CLOSE:
            self._body_len += n
            self.pos += n
            return
        if state in (_State.CHUNK_SIZE, _State.CHUNK_DATA, _State.CHUNK_CRLF, _State.TRAILERS):
            self._state = _State.LOST
            self.pos += n
            return
        if state is _State.LOST:
            self.pos += n
            return
        if state is _State.HEAD:
            if self._head_past_budget():
                self.pos += n
                return
            self._stats.lost_starts += 1
            self._reset()
        elif state is _State.IDLE and not next_is_start:
            self._stats.lost_starts += 1
        self.pos += n
        self._state = _State.IDLE if next_is_start else _State.SKIP

    def _bytes(self, data: bytes, ts_ns: int, out: list[HttpMessage]) -> None:  # noqa: PLR0915
        view = memoryview(data)
        i = 0
        n = len(data)
        while i < n:
            state = self._state
            if state is _State.IDLE:
                # Tolerate the stray CRLF some clients send between messages.
                while i < n and view[i] in (0x0D, 0x0A):
                    i += 1
                    self.pos += 1
                if i == n:
                    return
                start = bytes(view[i : i + _LONGEST_PREFIX])
                if not looks_like_start(start) and not _could_start(view[i:]):
                    self._garbage(n - i)
                    return
                self._state = _State.HEAD
                self._msg_start = self.pos
                self._start_ns = ts_ns
                self._line.clear()
                continue
            if state is _State.HEAD:
                before = len(self._line)
                self._line += view[i:]
                end = self._line.find(b"\r\n\r\n", max(0, before - 3))
                if end < 0:
                    if len(self._line) > MAX_HEAD_BYTES:
                        self._garbage(n - i)
                        return
                    self.pos += n - i
                    return
                used = end + 4 - before
                i += used
                self.pos += used
                try:
                    head = parse_head(bytes(self._line[: end + 4]))
                except ParseError:
                    self._garbage(n - i)
                    return
                self._line.clear()
                self._begin_body(head, framing_of(head, self._response_to), ts_ns, out)
                continue
            if state is _State.LENGTH:
                take = min(self._remaining, n - i)
                self._keep(view[i : i + take])
                self._remaining -= take
                self._body_len += take
                i += take
                self.pos += take
                if self._remaining == 0:
                    self._finish(ts_ns, out)
                continue
            if state is _State.UNTIL_CLOSE or state is _State.LOST:
                if state is _State.UNTIL_CLOSE:
                    self._keep(view[i:])
                    self._body_len += n - i
                self.pos += n - i
                return
            if state is _State.SKIP:
                self.pos += n - i
                return
            i = self._chunked(view, i, ts_ns, out)

    def _chunked(self, view: memoryview, i: int, ts_ns: int, out: list[HttpMessage]) -> int:
        n = len(view)
        state = self._state
        if state is _State.CHUNK_DATA:
            take = min(self._chunk_left, n - i)
            self._keep(view[i : i + take])
            self._body_len += take
            self._chunk_left -= take
            self.pos += take
            if self._chunk_left == 0:
                self._state = _State.CHUNK_CRLF
                self._line.clear()
            return i + take
        # CHUNK_SIZE, CHUNK_CRLF and TRAILERS all consume CRLF-terminated lines.
        nl = bytes(view[i:]).find(b"\n")
        if nl < 0:
            self._line += view[i:]
            self.pos += n - i
            if len(self._line) > 1024:
                self._garbage(0)
            return n
        self._line += view[i : i + nl + 1]
        self.pos += nl + 1
        line = bytes(self._line).rstrip(b"\r\n")
        self._line.clear()
        if state is _State.CHUNK_CRLF:
            if line:
                self._garbage(n - i - nl - 1)
                return n
            self._state = _State.CHUNK_SIZE
        elif state is _State.CHUNK_SIZE:
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                self._garbage(n - i - nl - 1)
                return n
            if size < 0:
                self._garbage(n - i - nl - 1)
                return n
            if size == 0:
                self._state = _State.TRAILERS
            else:
                self._chunk_left = size
                self._state = _State.CHUNK_DATA
        elif state is _State.TRAILERS and not line:
            self._finish(ts_ns, out)
        return i + nl + 1

    def _begin_body(
        self, head: MessageHead, framing: int, ts_ns: int, out: list[HttpMessage]
    ) -> None:
        self._head = head
        self._body.clear()
        self._body_len = 0
        if framing == 0:
            self._finish(ts_ns, out)
        elif framing == _CHUNKED:
            self._state = _State.CHUNK_SIZE
            self._line.clear()
        elif framing == _UNTIL_CLOSE:
            self._state = _State.UNTIL_CLOSE
        elif framing == _BAD_LENGTH:
            self._garbage(0)
        else:
            self._state = _State.LENGTH
            self._remaining = framing

    def _start(self, data: bytes, length: int, ts_ns: int) -> list[HttpMessage] | None:
        """A syscall that starts a message with its whole head, parsed once.

        The common case, a whole message, is done in one step (``start_in_python``, in C where
        probe/_head.c was built). Otherwise
        the body goes on past this syscall (sent with sendfile, say, or in writes of its own)
        and is placed from here, without parsing the head a second time on the general path.
        None when the head is not all here or is not HTTP: the general path then collects or
        rejects it.
        """
        found = (
            _start_in_c(data, length, ts_ns, self._body_limit, self._response_to)
            if _start_in_c is not None
            else _UNDECIDED
        )
        if isinstance(found, _Undecided):
            found = start_in_python(data, length, ts_ns, self._body_limit, self._response_to)
        if found is None:
            return None
        if isinstance(found, HttpMessage):
            self.pos += length
            return [found]
        head, framing = found
        size = head.size
        if framing == _BAD_LENGTH:
            return None
        out: list[HttpMessage] = []
        self._msg_start = self.pos
        self._start_ns = ts_ns
        self.pos += size
        self._begin_body(head, framing, ts_ns, out)
        if len(data) > size:
            self._bytes(data[size:], ts_ns, out)
        if length > len(data):
            self._gap(length - len(data), ts_ns, False, out)
        return out

    def _head_past_budget(self) -> bool:
        """A head that goes on past the bytes copied (a request with a large cookie or token:
        the capture budget is 3 KiB by default). Its start line and whole header lines are kept,
        and since where the head ends is unknown, so is its framing: the message ends as one
        whose framing was lost (``settle_lost``, the next start, the close). A request line cut
        in its query (a long search or tracking URL) still has its whole path. False when less
        than that was copied, or what was is not HTTP."""
        line = self._line
        last = line.rfind(b"\r\n")
        head: MessageHead | None
        if last < 0:
            head = _request_line_cut_in_query(bytes(line))
        else:
            try:
                head = parse_head(bytes(line[: last + 2]) + b"\r\n")
            except ParseError:
                head = None
        if head is None:
            return False
        self._stats.cut_heads += 1
        self._cut = True
        line.clear()
        self._head = head
        self._body.clear()
        self._body_len = 0
        self._state = _State.LOST
        return True

    def _keep(self, chunk: memoryview) -> None:
        # The kept body is the body's first bytes, without holes: once some were counted but not
        # copied (the capture budget ran out, and a start in the other direction renewed it
        # mid-body), later bytes cannot be joined to it.
        if len(self._body) != self._body_len:
            return
        room = self._body_limit - len(self._body)
        if room > 0:
            self._body += chunk[:room]

    def _finish(self, end_ns: int, out: list[HttpMessage], *, complete: bool = True) -> None:
        head = self._head
        if head is not None:
            # build, not HttpMessage(...): keyword parsing cost 5 % of the agent's CPU.
            body = bytes(self._body) if self._body else b""
            size = self.pos - self._msg_start
            truncated = self._body_len > len(body)
            start_ns = self._start_ns
            message = build(_HTTP_MESSAGE, head, start_ns, end_ns, size, body, truncated, complete)
            out.append(message)
        self._reset()

    def _reset(self) -> None:
        self._state = _State.IDLE
        self._head = None
        self._line.clear()
        self._body.clear()  # _finish copied it out
        self._body_len = 0
        self._remaining = 0
        self._chunk_left = 0
        self._cut = False

    def _garbage(self, rest: int) -> None:
        self._stats.parse_errors += 1
        self._reset()
        self._state = _State.SKIP
        self.pos += rest


def _request_line_cut_in_query(line: bytes) -> MessageHead | None:
    """The head of a request whose line was cut inside its query: method and path are whole,
    the query (never reported) is cut, and the version and headers are unknown ("")."""
    text = line.decode("latin-1")
    method, _, target = text.partition(" ")
    if method not in _METHODS or "?" not in target or " " in target:
        return None
    if not (target.isascii() and target.isprintable()):
        return None
    return build(MessageHead, True, method, target, 0, "", "\r\n", len(line))


def _could_start(data: memoryview) -> bool:
    """A segment shorter than a start prefix that could still grow into one."""
    if len(data) >= _LONGEST_PREFIX:
        return False
    head = bytes(data)
    return any(prefix.startswith(head) for prefix in _START_PREFIXES)
