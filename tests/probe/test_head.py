"""probe/_head.c against its reference, probe.http.parse_head_in_python.

The extension may leave any head to Python (it returns None), but when it answers, its answer
must be exactly Python's, and it must never accept a head that Python rejects.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from probe import http
from probe.http import ParseError, parse_head_in_python
from tests.ci import built_extension

SplitHead = Callable[[bytes, int], tuple[object, ...] | None]


@pytest.fixture(scope="module")
def split_head() -> SplitHead:
    split_head: SplitHead = built_extension("probe._head").split_head
    return split_head


def python_fields(raw: bytes, end: int) -> tuple[object, ...] | None:
    try:
        return tuple(parse_head_in_python(raw, end))
    except ParseError:
        return None


NGINX_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 11:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\n"
    b'{"ok":true}'
)
HEADS = [
    NGINX_RESPONSE,
    b"GET /users/42?x=1 HTTP/1.1\r\nHost: api\r\nAccept: */*\r\n\r\n",
    b"POST /pay HTTP/1.0\r\nContent-Length: 2\r\nX-\xc9t\xc0: \xd7\xde\r\n\r\n{}",
    b"HTTP/1.0 404\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Odd: a:b:c\r\nNoColon\r\n\r\n",  # colons are counted as a whole
]


@pytest.mark.parametrize("raw", HEADS)
def test_ordinary_heads_are_parsed_in_c_exactly_as_in_python(
    split_head: SplitHead, raw: bytes
) -> None:
    end = raw.find(b"\r\n\r\n")
    for given_end in (end, -1):
        fields = split_head(raw, given_end)
        assert fields is not None, "the common case is the extension's to parse"
        assert fields == python_fields(raw, given_end)


@pytest.mark.parametrize("method", sorted(http._METHODS))
def test_every_method_python_knows_is_parsed_in_c_too(split_head: SplitHead, method: str) -> None:
    """The two lists are kept by hand (and the kernel's start_token a third)."""
    raw = f"{method} /dav/a HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    fields = split_head(raw, -1)
    assert fields is not None and fields == python_fields(raw, -1)


def test_parse_head_goes_through_the_extension(split_head: SplitHead) -> None:
    assert http._split_head is split_head
    head = http.parse_head(NGINX_RESPONSE)
    assert type(head) is http.MessageHead, "built as the NamedTuple itself, not copied into one"
    assert (head.status, head.version, head.header("content-length")) == (200, "HTTP/1.1", "11")


REJECTED = [
    b"GET /a HTTP/1.1\r\nHost: x\n\r\n",  # a bare LF
    b"GET /a HTTP/1.1\r\nHo\x00st: x\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost x\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\n\r\n",
    b"GET  HTTP/1.1\r\n\r\n",
    b"BREW /pot HTTP/1.1\r\n\r\n",
    b"GET / HTTP/2.0\r\n\r\n",
    b"HTTP/1.2 200 OK\r\n\r\n",
    b"HTTP/1.1 20x OK\r\n\r\n",
    b"HTTP/1.1 \xb200 OK\r\n\r\n",  # a superscript two is a digit to str.isdigit
    b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 101 + b"\r\n",
    b"\r\n\r\n",
    b"GET / HTTP/1.1\r\n",
]


@pytest.mark.parametrize("raw", REJECTED)
def test_heads_python_rejects_are_left_to_python(split_head: SplitHead, raw: bytes) -> None:
    assert python_fields(raw, raw.find(b"\r\n\r\n")) is None
    assert split_head(raw, raw.find(b"\r\n\r\n")) is None
    with pytest.raises(ParseError):
        http.parse_head(raw)


# Mostly heads a server could send, with the odd character where parsers slip: latin-1 letters
# (lower-cased), spaces, colons, a superscript digit, a bare LF or a NUL.
odd_text = st.text(st.sampled_from("aZ09 :/?=-_.\xc0\xd7\xde\xdf\xe9\xb2\x7f\n\r\x00"), max_size=10)
usual_target = st.from_regex(r"/[a-z0-9/?=&%._-]{0,16}", fullmatch=True)
request_lines = st.builds(
    "{} {} {}".format,
    st.sampled_from(["GET", "POST", "DELETE", "OPTIONS", "GET", "POST", "get", "BREW"]),
    st.one_of(usual_target, usual_target, usual_target, odd_text),
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/1.1 x"]),
)
usual_status = st.integers(100, 599).map(str)
status_lines = st.builds(
    "{} {}{}".format,
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/1.1", "HTTP/1.0", "HTTP/1.", "HTTP/1.10"]),
    st.one_of(usual_status, usual_status, st.text("0123456789x\xb2", max_size=4)),
    st.one_of(st.just(""), st.just(" OK"), odd_text.map(" {}".format)),
)
start_lines = st.one_of(
    request_lines.map(lambda line: line.encode("latin-1")),
    status_lines.map(lambda line: line.encode("latin-1")),
    st.binary(max_size=24),
)
usual_header = st.builds(
    "{}:{}{}".format,
    st.text(st.sampled_from("Content-LengthXx\xc9\xde"), min_size=1, max_size=8),
    st.sampled_from([" ", "", "  "]),
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=12),
).map(lambda line: line.encode("latin-1"))
header_lines = st.lists(
    st.one_of(
        usual_header,
        usual_header,
        usual_header,
        usual_header,
        odd_text.map(lambda text: text.encode("latin-1")),
    ),
    max_size=6,
)


@settings(max_examples=3000, deadline=None)
@given(start_lines, header_lines, st.binary(max_size=8), st.booleans())
@example(b"GET / HTTP/1.1", [b"A: \xc0\xd7\xde\xdf"], b"", True)
def test_the_extension_never_disagrees_with_python(
    split_head: SplitHead, start: bytes, lines: list[bytes], body: bytes, known_end: bool
) -> None:
    raw = b"\r\n".join([start, *lines]) + b"\r\n\r\n" + body
    end = raw.find(b"\r\n\r\n") if known_end else -1
    fields = split_head(raw, end)
    if fields is not None:
        assert fields == python_fields(raw, end)


usual_start = st.one_of(
    st.builds(
        "{} {} {}".format,
        st.sampled_from(sorted(http._METHODS)),
        usual_target.filter(bool),
        st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
    ),
    st.builds(
        "{} {}{}".format,
        st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
        usual_status,
        st.sampled_from(["", " OK", " Not Found", " \xc9t\xe9"]),
    ),
).map(lambda line: line.encode("latin-1"))


@settings(max_examples=1000, deadline=None)
@given(usual_start, st.lists(usual_header, max_size=8), st.booleans())
def test_every_well_formed_head_is_parsed_in_c_exactly_as_in_python(
    split_head: SplitHead, start: bytes, lines: list[bytes], known_end: bool
) -> None:
    raw = b"\r\n".join([start, *lines]) + b"\r\n\r\n"
    end = raw.find(b"\r\n\r\n") if known_end else -1
    fields = split_head(raw, end)
    assert fields is not None
    assert fields == python_fields(raw, end)
    for text in (f for f in fields if isinstance(f, str)):
        # CPython's canonical form, which str methods and dict lookups rely on: a string of
        # ASCII characters is flagged ASCII.
        assert text.isascii() == all(ord(c) < 128 for c in text)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=-1, max_value=70))
def test_random_bytes_and_ends_never_crash_and_never_disagree(
    split_head: SplitHead, raw: bytes, end: int
) -> None:
    fields = split_head(raw, end)
    if fields is not None:
        assert fields == python_fields(raw, end)


# --- header_framing: what the header block says of the body ---------------------------------

HeaderFraming = Callable[[str], int]
ASK = -5  # the extension leaves the value to Python's int()


@pytest.fixture(scope="module")
def header_framing() -> HeaderFraming:
    header_framing: HeaderFraming = built_extension("probe._head").header_framing
    return header_framing


@pytest.mark.parametrize(
    ("block", "framing"),
    [
        ("\r\ncontent-type: application/json\r\ncontent-length: 19\r\n", 19),
        ("\r\ncontent-length:0\r\n", 0),
        ("\r\ncontent-length: \t 123456789012345678 \r\n", 123456789012345678),
        ("\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 5\r\n", -1),
        ("\r\ntransfer-encoding: gzip\r\ncontent-length: 5\r\n", 5),
        ("\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n", 12),
        ("\r\nTRANSFER-ENCODING: Chunked\r\n", -1),
        ("\r\nhost: api\r\n", -4),
        ("\r\n", -4),
    ],
)
def test_usual_header_blocks_are_framed_in_c_as_in_python(
    header_framing: HeaderFraming, block: str, framing: int
) -> None:
    assert header_framing(block) == framing == http.header_framing_in_python(block)


@pytest.mark.parametrize(
    "value", ["+5", "-5", "1_0", "", "  ", "5x", "1234567890123456789", "\xa05", "\x0b5"]
)
def test_unusual_lengths_are_left_to_pythons_int(header_framing: HeaderFraming, value: str) -> None:
    assert header_framing(f"\r\ncontent-length:{value}\r\n") == ASK


framing_blocks = st.lists(
    st.one_of(
        st.builds(
            "{}:{}".format,
            st.sampled_from(
                [
                    "content-length",
                    "Content-Length",
                    "transfer-encoding",
                    "Transfer-ENCODING",
                    "host",
                    "content-lengthx",
                    "content-lengtH",
                ]
            ),
            st.text(st.sampled_from("0123456789 \t+-_chunkedCHUNKEDx\xa0\x0b\r\n"), max_size=12),
        ),
        st.text(st.sampled_from("content-lgh:CONTENT-LGH\r\n 0123"), max_size=20),
    ),
    max_size=5,
).map(lambda lines: "".join(f"\r\n{line}" for line in lines) + "\r\n")


@settings(max_examples=3000, deadline=None)
@given(st.one_of(framing_blocks, st.text(max_size=40)))
@example("\r\ncontent-length: 7")  # no line end after the value: Python's slice stops short
@example("\r\ntransfer-encoding: chunked")
def test_header_framing_never_disagrees_with_python(
    header_framing: HeaderFraming, block: str
) -> None:
    framing = header_framing(block)
    if framing != ASK:
        assert framing == http.header_framing_in_python(block)


# --- header_value: a header's first value, names compared lower-cased -----------------------

HeaderValue = Callable[[str, str], "str | None"]


@pytest.fixture(scope="module")
def header_value() -> HeaderValue:
    header_value: HeaderValue = built_extension("probe._head").header_value
    return header_value


@pytest.mark.parametrize(
    ("block", "name", "value"),
    [
        ("\r\nContent-Type:  application/json \t\r\n", "content-type", "application/json"),
        ("\r\nCONTENT-ENCODING:gzip\r\nContent-Encoding: br\r\n", "content-encoding", "gzip"),
        ("\r\nX-Content-Type: a\r\nContent-Type: b\r\n", "content-type", "b"),
        ("\r\ncontent-typex: a\r\ncontent-type: b\r\n", "content-type", "b"),
        ("\r\nX-Error: Insufficient_Balance\r\n", "x-error", "Insufficient_Balance"),
        ("\r\ncontent-type: a\r\n", "Content-Type", None),  # names are asked in lower case
        ("\r\nhost: api\r\n", "content-type", None),
        ("\r\nx-empty:\r\n", "x-empty", ""),
        ("\r\nx-last: cut", "x-last", "cu"),  # no line end: Python's slice stops one short
        ("\r\nNaïve: \xc0\r\n", "naïve", "\xc0"),
        ("\r\n" + "X" * 80 + ": long\r\n", "x" * 80, "long"),
        ("\r\nx: 1\r\n", "\u0101", None),  # a name that no latin-1 block can hold
        ("\r\n\u0100x: wide\r\n", "\u0101x", "wide"),  # a block no parser makes
    ],
)
def test_a_header_is_found_in_c_as_in_python(
    header_value: HeaderValue, block: str, name: str, value: str | None
) -> None:
    assert header_value(block, name) == value == http.header_value_in_python(block, name)


header_names = st.sampled_from(["content-type", "content-encoding", "x-a", "x", "a:b", "ß"])


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.lists(
            st.builds(
                "{}:{}".format,
                st.sampled_from(["Content-Type", "content-TYPE", "X-A", "x", "X", "SS", "ẞ"]),
                st.text(st.sampled_from("ab \t:\r\nÀ"), max_size=8),
            ),
            max_size=4,
        ).map(lambda lines: "".join(f"\r\n{line}" for line in lines) + "\r\n"),
        st.text(st.sampled_from("\r\nxXaA: \t\xc0\xe0"), max_size=30),
    ),
    header_names,
)
def test_header_value_never_disagrees_with_python(
    header_value: HeaderValue, block: str, name: str
) -> None:
    assert header_value(block, name) == http.header_value_in_python(block, name)


# --- start_message: a syscall that starts a message, taken in one step -----------------------

StartMessage = Callable[[bytes, int, int, int, Callable[[], str | None] | None], object]
BODY_LIMIT = 16


@pytest.fixture(scope="module")
def start_in_c() -> StartMessage:
    start: StartMessage = built_extension("probe._head").start_message
    return start


def answering(method: str | None) -> Callable[[], str | None]:
    return lambda: method


def in_python(
    data: bytes, length: int, limit: int = BODY_LIMIT, method: str | None = "GET"
) -> object:
    return http.start_in_python(data, length, 7, limit, answering(method))


def typed(answer: object) -> object:
    """The answer with the type of every field, so that True and 1 differ."""
    if isinstance(answer, tuple):
        return type(answer), tuple(typed(field) for field in answer)
    return type(answer), answer


@pytest.mark.parametrize(
    ("data", "length", "method", "shape"),
    [
        (NGINX_RESPONSE, len(NGINX_RESPONSE), "GET", "whole"),
        (NGINX_RESPONSE[:-4], len(NGINX_RESPONSE), "GET", "whole"),  # the capture cut the body
        (NGINX_RESPONSE, len(NGINX_RESPONSE) + 5, "GET", "head"),  # more follows in the write
        (NGINX_RESPONSE[:-11], len(NGINX_RESPONSE) - 11, "GET", "head"),  # body sent apart
        (NGINX_RESPONSE[:-11], len(NGINX_RESPONSE) - 11, "HEAD", "whole"),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", 46, None, "whole"),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc", 41, "GET", "head"),  # until close
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc", 53, "GET", "head"),
        (b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 28, None, "whole"),
        (b"POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 41, None, "whole"),
        (b"GET /x HTTP/1.1\r\nHost: a\r\n", 26, None, "none"),  # no blank line yet
    ],
)
def test_ordinary_message_starts_are_decided_in_c_exactly_as_in_python(
    start_in_c: StartMessage, data: bytes, length: int, method: str | None, shape: str
) -> None:
    answer = start_in_c(data, length, 7, BODY_LIMIT, answering(method))
    assert typed(answer) == typed(in_python(data, length, method=method))
    kind = {http.HttpMessage: "whole", tuple: "head", type(None): "none"}[type(answer)]
    assert kind == shape


def test_a_whole_message_keeps_its_body_up_to_the_limit_and_says_when_it_was_cut(
    start_in_c: StartMessage,
) -> None:
    message = start_in_c(NGINX_RESPONSE[:-4], len(NGINX_RESPONSE), 7, 5, None)
    assert isinstance(message, http.HttpMessage)
    assert (message.body, message.body_truncated) == (b'{"ok"', True)
    assert (message.start_ns, message.end_ns, message.size) == (7, 7, len(NGINX_RESPONSE))


def test_what_the_extension_cannot_read_is_left_to_python(start_in_c: StartMessage) -> None:
    odd_length = b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"
    assert start_in_c(odd_length, len(odd_length), 7, BODY_LIMIT, None) is http._UNDECIDED
    parser = http.StreamParser(http.ParserStats())
    [message] = parser.feed(0, odd_length, len(odd_length), 7, True)
    assert (message.head.status, message.body, message.complete) == (200, b"ok", True)


def test_an_error_in_naming_the_answered_method_is_not_swallowed(
    start_in_c: StartMessage,
) -> None:
    def broken() -> str | None:
        raise LookupError("no request")

    with pytest.raises(LookupError):
        start_in_c(NGINX_RESPONSE, len(NGINX_RESPONSE), 7, BODY_LIMIT, broken)


message_starts = st.builds(
    lambda start, block, body: start + block + b"\r\n" + body,
    st.sampled_from(
        [
            b"HTTP/1.1 200 OK",
            b"HTTP/1.0 304 Not Modified",
            b"HTTP/1.1 101 Switching",
            b"HTTP/1.1 204 x",
            b"GET /a HTTP/1.1",
            b"HEAD /b?c HTTP/1.0",
            b"BREW /pot HTTP/1.1",
            b"HTTP/1.1 2000 OK",
            b"GET  HTTP/1.1",
        ]
    ),
    framing_blocks.map(lambda block: block.encode("latin-1")),
    st.binary(max_size=40),
)


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(message_starts, st.binary(max_size=80)),
    st.tuples(st.integers(0, 60), st.integers(-20, 20), st.integers(0, 40)),
    st.sampled_from([None, "GET", "HEAD", "CONNECT"]),
)
def test_any_bytes_are_decided_in_c_as_in_python_or_left_to_it(
    start_in_c: StartMessage, raw: bytes, sizes: tuple[int, int, int], method: str | None
) -> None:
    """``raw`` captured but for its last ``cut`` bytes, of a syscall ``more`` bytes longer (or
    shorter), bodies kept up to ``limit``."""
    cut, more, limit = sizes
    data = raw[: len(raw) - cut] if cut < len(raw) else raw
    length = max(len(data), len(raw) + more)
    answer = start_in_c(data, length, 7, limit, answering(method))
    if answer is not http._UNDECIDED:
        assert typed(answer) == typed(in_python(data, length, limit, method))
