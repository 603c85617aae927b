"""How ``StreamParser`` decides where a message body ends (RFC 9112 section 6.3)."""

from __future__ import annotations

import pytest

from probe.http import HttpMessage, ParserStats, StreamParser

BODY = b"hello"
CHUNKED_BODY = b"5\r\nhello\r\n0\r\n\r\n"

# (id, message, the method of the request a response answers, the body expected): None when the
# message is only over once the connection closes, "garbage" when the head cannot be framed.
FRAMING_CASES = [
    ("content-length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + BODY, "GET", BODY),
    (
        "content-length in any case and with spaces",
        b"HTTP/1.1 200 OK\r\ncontent-LENGTH:   5  \r\n\r\n" + BODY,
        "GET",
        BODY,
    ),
    (
        "chunked wins over a content-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        + CHUNKED_BODY,
        "GET",
        BODY,
    ),
    (
        "chunked in capitals",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n" + CHUNKED_BODY,
        "GET",
        BODY,
    ),
    (
        "a transfer-encoding that is not chunked leaves the content-length",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n" + BODY,
        "GET",
        BODY,
    ),
    (
        "a header that only ends in content-length is not one",
        b"HTTP/1.1 200 OK\r\nX-Content-Length: 5\r\n\r\n" + BODY,
        "GET",
        None,
    ),
    ("no framing header: until close", b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n" + BODY, "GET", None),
    (
        "a content-length that is no number",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n",
        "GET",
        "garbage",
    ),
    (
        "a negative content-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "GET",
        "garbage",
    ),
    ("204 has no body", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "GET", b""),
    ("304 has no body", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", "GET", b""),
    (
        "the answer to HEAD has no body",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        "HEAD",
        b"",
    ),
    (
        "a request without framing headers has no body",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        None,
        b"",
    ),
    (
        "a request with a content-length",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n" + BODY,
        None,
        BODY,
    ),
]


def assert_framed(
    done: list[HttpMessage], stats: ParserStats, message: bytes, expected: bytes | str | None
) -> None:
    """What a framing case expects of the messages parsed so far (before any close)."""
    if expected == "garbage":
        assert (done, stats.parse_errors) == ([], 1)
    elif expected is None:
        assert done == []
    else:
        assert [(m.body, m.size) for m in done] == [(expected, len(message))]
        assert stats.parse_errors == 0


@pytest.mark.parametrize(
    ("message", "answering", "expected"),
    [case[1:] for case in FRAMING_CASES],
    ids=[case[0] for case in FRAMING_CASES],
)
def test_the_framing_headers_decide_where_the_body_ends(
    message: bytes, answering: str | None, expected: bytes | str | None
) -> None:
    stats = ParserStats()
    parser = StreamParser(stats, response_to=lambda: answering)
    done = parser.feed(0, message, len(message), 1, True)
    if expected == "garbage":
        assert (done, stats.parse_errors) == ([], 1)
    elif expected is None:
        assert done == []
        closed = parser.close(len(message), 2)
        assert [(m.body, m.end_ns, m.complete) for m in closed] == [(BODY, 2, True)]
    else:
        assert [(m.body, m.size, m.complete) for m in done] == [(expected, len(message), True)]
        assert stats.parse_errors == 0


@pytest.mark.parametrize(
    ("message", "answering", "expected"),
    [case[1:] for case in FRAMING_CASES],
    ids=[case[0] for case in FRAMING_CASES],
)
def test_the_framing_is_the_same_when_the_message_arrives_byte_by_byte(
    message: bytes, answering: str | None, expected: bytes | str | None
) -> None:
    stats = ParserStats()
    parser = StreamParser(stats, response_to=lambda: answering)
    done = [
        m for i in range(len(message)) for m in parser.feed(i, message[i : i + 1], 1, 1, i == 0)
    ]
    assert_framed(done, stats, message, expected)


# Each framing case again, its first syscall ending 0, 1 or 3 bytes into the body.
SPLIT_CASES = [
    (f"{name}, first syscall ending {split} bytes into the body", message, answering, expected, at)
    for name, message, answering, expected in FRAMING_CASES
    for split in (0, 1, 3)
    if (at := message.index(b"\r\n\r\n") + 4 + split) <= len(message)
]


@pytest.mark.parametrize(
    ("message", "answering", "expected", "at"),
    [case[1:] for case in SPLIT_CASES],
    ids=[case[0] for case in SPLIT_CASES],
)
def test_the_framing_is_the_same_when_the_body_goes_on_past_the_head_s_syscall(
    message: bytes, answering: str | None, expected: bytes | str | None, at: int
) -> None:
    stats = ParserStats()
    parser = StreamParser(stats, response_to=lambda: answering)
    first, rest = message[:at], message[at:]
    done = parser.feed(0, first, len(first), 1, True)
    done += [m for i in range(len(rest)) for m in parser.feed(at + i, rest[i : i + 1], 1, 2, False)]
    assert_framed(done, stats, message, expected)


def test_a_body_counted_but_not_copied_ends_the_message_with_the_syscall_that_moved_it() -> None:
    """nginx sends a file's bytes with sendfile: the kernel counts them, copies nothing."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n"
    parser = StreamParser(ParserStats(), response_to=lambda: "GET")
    assert parser.feed(0, head, len(head), 1, True) == []
    assert parser.in_message
    [done] = parser.settle(len(head) + 19, 7)
    assert (done.size, done.body, done.body_truncated, done.end_ns) == (
        len(head) + 19,
        b"",
        True,
        7,
    )


def test_a_syscall_cut_after_the_head_keeps_what_was_copied_of_the_body() -> None:
    message = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"
    parser = StreamParser(ParserStats(), response_to=lambda: "GET")
    [done] = parser.feed(0, message[:-6], len(message), 3, True)
    assert (done.size, done.body, done.body_truncated, done.end_ns) == (
        len(message),
        b"0123",
        True,
        3,
    )


MALFORMED_STARTS = [
    ("a status code with a superscript digit", b"HTTP/1.1 2\xb20 OK\r\nContent-Length: 0\r\n\r\n"),
    ("a status code of two digits", b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"),
    ("an empty request target", b"GET  HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("a control byte in the request target", b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("a DEL in the request target", b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("a non-ASCII request target", b"GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n"),
]


@pytest.mark.parametrize(
    "message", [case[1] for case in MALFORMED_STARTS], ids=[case[0] for case in MALFORMED_STARTS]
)
def test_a_malformed_start_line_is_counted_as_a_parse_error_and_never_raises(
    message: bytes,
) -> None:
    stats = ParserStats()
    parser = StreamParser(stats, response_to=lambda: "GET")
    assert parser.feed(0, message, len(message), 1, True) == []
    assert stats.parse_errors == 1


def test_every_visible_ascii_character_may_be_in_a_request_target() -> None:
    target = "/" + "".join(chr(c) for c in range(0x21, 0x7F))
    message = f"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n".encode()
    stats = ParserStats()
    done = StreamParser(stats).feed(0, message, len(message), 1, True)
    assert ([m.head.target for m in done], stats.parse_errors) == ([target], 0)


def test_body_bytes_after_a_hole_are_not_joined_to_the_body_kept_before_it() -> None:
    """The kernel may copy bytes again later in a body whose capture budget ran out (a request
    read meanwhile renews it): the kept body stays the body's first bytes."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n"
    parser = StreamParser(ParserStats(), response_to=lambda: "GET")
    assert parser.feed(0, head + b"0123456789", len(head) + 20, 1, True) == []
    [message] = parser.feed(len(head) + 20, b"abcdefghij", 10, 2, False)
    assert message.body == b"0123456789"
    assert message.body_truncated and message.complete
    assert message.size == len(head) + 30
