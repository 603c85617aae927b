"""The connection tracker on the records the kernel would emit (see kernel_sim)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.abi import Record, Role, StreamDirection
from probe.conn import ConnectionTracker, ConnTotals, ObservedExchange, TrackerLimits
from tests.probe.kernel_sim import IN, OUT, SimConnection, records_of

MS = 1_000_000
Step = tuple[StreamDirection, bytes, int]


def request(path: str = "/hello", method: str = "GET", body: bytes = b"") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body or method == "POST" else ""
    return f"{method} {path} HTTP/1.1\r\nHost: t\r\n{length}\r\n".encode() + body


def response(status: int = 200, body: bytes = b'{"ok":true}', extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def run(records: list[Record], tracker: ConnectionTracker | None = None) -> list[ObservedExchange]:
    tracker = ConnectionTracker() if tracker is None else tracker
    out: list[ObservedExchange] = []
    for r in records:
        out += tracker.feed(r)
    return out


def test_a_request_and_its_response_make_one_server_exchange() -> None:
    conn = SimConnection()
    [ex] = run(
        records_of(conn, [(IN, request("/users/7?x=1"), 10 * MS), (OUT, response(200), 13 * MS)])
    )
    assert ex.role is Role.SERVER
    assert (ex.request.head.method, ex.request.head.target) == ("GET", "/users/7?x=1")
    assert ex.response is not None and ex.response.head.status == 200
    assert ex.latency_ns == 3 * MS
    assert ex.request.size == len(request("/users/7?x=1"))
    assert ex.response.size == len(response(200))
    assert ex.response.body == b'{"ok":true}'
    assert ex.complete


def test_feeding_into_a_list_appends_what_feed_returns() -> None:
    steps: list[Step] = []
    for i in range(3):
        steps += [(IN, request(f"/{i}"), i * MS), (OUT, response(), i * MS + 1)]
    records = records_of(SimConnection(), steps)
    expected = run(records)
    into = expected[:1]  # what earlier records completed
    tracker = ConnectionTracker()
    for record in records:
        tracker.feed_into(record, into)
    assert len(expected) == 3 and into == expected[:1] + expected


def test_a_thousand_requests_on_one_keep_alive_connection_are_each_seen_once() -> None:
    conn = SimConnection()
    steps = []
    for i in range(1000):
        steps.append((IN, request(f"/item/{i}"), (2 * i) * MS))
        steps.append((OUT, response(200 if i % 10 else 500), (2 * i + 1) * MS))
    out = run(records_of(conn, steps))
    assert [e.request.head.target for e in out] == [f"/item/{i}" for i in range(1000)]
    assert sum(1 for e in out if e.response and e.response.head.status == 500) == 100
    assert all(e.latency_ns == MS for e in out)


def test_pipelined_requests_in_one_read_are_answered_in_order() -> None:
    conn = SimConnection()
    batch = request("/a") + request("/b") + request("/c")
    answers = response(200, b"a") + response(404, b"bb") + response(500, b"ccc")
    out = run(records_of(conn, [(IN, batch, 1 * MS), (OUT, answers, 5 * MS)]))
    assert [(e.request.head.target, e.response.head.status) for e in out if e.response] == [
        ("/a", 200),
        ("/b", 404),
        ("/c", 500),
    ]


def test_a_first_response_whose_status_line_starts_with_one_byte_is_joined_to_the_rest() -> None:
    conn = SimConnection()
    answer = response(200)
    steps = [(IN, request("/a"), 1 * MS), (OUT, answer[:1], 2 * MS), (OUT, answer[1:], 3 * MS)]
    [ex] = run(records_of(conn, steps))
    assert ex.response is not None and ex.response.head.status == 200
    assert ex.response.size == len(answer) and ex.complete
    assert ex.latency_ns == 2 * MS


def test_a_request_written_in_several_small_writes_is_one_client_exchange() -> None:
    conn = SimConnection()
    pieces = [b"GET /slow HTTP/1.1\r\n", b"Host: t\r\n", b"Accept: */*\r\n", b"\r\n"]
    steps = [(OUT, p, (i + 1) * MS) for i, p in enumerate(pieces)]
    steps.append((IN, response(200), 10 * MS))
    [ex] = run(records_of(conn, steps))
    assert ex.role is Role.CLIENT
    assert ex.request.head.target == "/slow"
    assert ex.latency_ns == 9 * MS  # from the first write to the read of the response


def test_a_response_split_into_header_and_body_writes_is_one_response() -> None:
    conn = SimConnection()
    full = response(200, b'{"error":"insufficient_balance"}')
    head, body = full.split(b"\r\n\r\n", 1)
    out = run(
        records_of(
            conn, [(IN, request(), 1 * MS), (OUT, head + b"\r\n\r\n", 2 * MS), (OUT, body, 4 * MS)]
        )
    )
    [ex] = out
    assert ex.response is not None and ex.response.body == b'{"error":"insufficient_balance"}'
    assert ex.latency_ns == 3 * MS


def big_response_steps() -> tuple[list[Step], int, int]:
    body = b"x" * (5 * 1024 * 1024)
    full = response(200, body)
    chunk = 65536
    steps = [(IN, request("/big"), 1 * MS)]
    ts = 2 * MS
    for off in range(0, len(full), chunk):
        steps.append((OUT, full[off : off + chunk], ts))
        ts += MS
    return steps, ts - MS, len(full)


def test_a_five_megabyte_response_ends_when_the_next_request_reveals_its_last_write() -> None:
    conn = SimConnection(stash_requests=False)  # the next request on its own, not held back
    steps, last_write, size = big_response_steps()
    steps.append((IN, request("/next"), last_write + 50 * MS))
    out = run(records_of(conn, steps))
    [ex] = out
    assert ex.response is not None
    assert ex.response.size == size
    assert ex.response.end_ns == last_write
    assert ex.response.body_truncated and len(ex.response.body) == 1024


def test_a_five_megabyte_response_on_an_idle_connection_ends_from_the_kernel_totals() -> None:
    conn = SimConnection()
    steps, last_write, size = big_response_steps()
    tracker = ConnectionTracker()
    assert run(records_of(conn, steps), tracker) == []
    stalled = tracker.stalled(now_ns=last_write + 200 * MS, quiet_ns=100 * MS)
    assert stalled == [((conn.tgid, conn.fd), conn.conn_id)]
    totals = ConnTotals(
        conn.conn_id, conn.in_bytes, conn.in_last_ns, conn.out_bytes, conn.out_last_ns
    )
    [ex] = tracker.settle(conn.tgid, conn.fd, totals, last_write + 200 * MS)
    assert ex.response is not None and ex.response.size == size
    assert ex.latency_ns == last_write - 1 * MS


def test_a_server_that_closes_mid_response_yields_an_incomplete_exchange() -> None:
    conn = SimConnection()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    out = run(
        records_of(
            conn,
            [(IN, request("/close-mid"), 1 * MS), (OUT, head + b"y" * 1000, 2 * MS)],
            close_at=3 * MS,
        )
    )
    [ex] = out
    assert ex.response is not None and ex.response.head.status == 200
    assert not ex.complete
    assert ex.response.size == len(head) + 1000


def test_a_request_never_answered_before_close_is_recorded_as_incomplete() -> None:
    conn = SimConnection()
    [ex] = run(records_of(conn, [(IN, request("/hang"), 1 * MS)], close_at=9 * MS))
    assert ex.response is None and not ex.complete
    assert ex.latency_ns == 8 * MS


def test_garbage_after_a_method_token_is_counted_and_skipped() -> None:
    tracker = ConnectionTracker()
    bad = SimConnection(fd=7)
    assert (
        run(records_of(bad, [(IN, b"GET \x00\xff\xfe\xfd garbage\r\n\r\n", MS)], 2 * MS), tracker)
        == []
    )
    assert tracker.stats.parser.parse_errors == 1
    good = SimConnection(fd=8)
    [ex] = run(records_of(good, [(IN, request(), 3 * MS), (OUT, response(), 4 * MS)]), tracker)
    assert ex.complete


def test_chunked_responses_are_dechunked_for_the_body_check() -> None:
    conn = SimConnection()
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = [b'7\r\n{"error\r\n', b'18\r\n":"card_declined","x":1}\r\n', b"0\r\n\r\n"]
    steps = [(IN, request(), MS), (OUT, head, 2 * MS)]
    steps += [(OUT, c, (3 + i) * MS) for i, c in enumerate(chunks)]
    [ex] = run(records_of(conn, steps))
    assert ex.response is not None
    assert ex.response.body == b'{"error":"card_declined","x":1}'
    assert ex.response.end_ns == 5 * MS


def test_a_response_to_head_has_no_body_despite_its_content_length() -> None:
    conn = SimConnection()
    head_only = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
    out = run(
        records_of(
            conn,
            [
                (IN, request("/x", "HEAD"), MS),
                (OUT, head_only, 2 * MS),
                (IN, request("/y"), 3 * MS),
                (OUT, response(), 4 * MS),
            ],
        )
    )
    assert [(e.request.head.method, e.complete) for e in out] == [("HEAD", True), ("GET", True)]


def test_a_100_continue_is_not_taken_for_the_final_response() -> None:
    conn = SimConnection()
    head = b"POST /up HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    out = run(
        records_of(
            conn,
            [
                (IN, head, MS),
                (OUT, b"HTTP/1.1 100 Continue\r\n\r\n", 2 * MS),
                (IN, b"data", 3 * MS),
                (OUT, response(201), 4 * MS),
            ],
        )
    )
    [ex] = out
    assert ex.response is not None and ex.response.head.status == 201


def request_with_cookie(path: str, cookie_bytes: int, body: bytes = b"") -> bytes:
    """A request whose head is longer than the kernel copies (3 KiB by default)."""
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    cookie = "s=" + "c" * cookie_bytes
    return f"GET {path} HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n{length}\r\n".encode() + body


def test_a_request_whose_head_runs_past_the_capture_budget_is_still_paired() -> None:
    tracker = ConnectionTracker()
    big = request_with_cookie("/users/7?x=1", 6000)
    out = run(
        records_of(
            SimConnection(),
            [
                (IN, big, 1 * MS),
                (OUT, response(200), 4 * MS),
                (IN, request("/next"), 5 * MS),
                (OUT, response(404), 6 * MS),
            ],
        ),
        tracker,
    )
    assert [(e.request.head.target, e.response and e.response.head.status) for e in out] == [
        ("/users/7?x=1", 200),
        ("/next", 404),
    ]
    first = out[0]
    assert first.request.size == len(big)
    assert first.request.head.header("host") == "t"  # whole header lines before the cut
    assert first.latency_ns == 3 * MS
    assert tracker.stats.parser.cut_heads == 1
    assert tracker.stats.parser.lost_starts == 0 and tracker.stats.unmatched_responses == 0


def test_a_client_request_with_a_long_head_sent_in_pieces_is_one_exchange() -> None:
    big = request_with_cookie("/x", 5000, body=b'{"a":1}')
    steps = [(OUT, big[i : i + 1000], (1 + i // 1000) * MS) for i in range(0, len(big), 1000)]
    [ex] = run(records_of(SimConnection(role=Role.CLIENT), [*steps, (IN, response(), 20 * MS)]))
    assert ex.role is Role.CLIENT
    assert ex.request.head.target == "/x" and ex.request.size == len(big)
    assert ex.response is not None and ex.response.head.status == 200 and ex.complete


def test_a_100_continue_does_not_end_a_request_whose_head_ran_past_the_budget() -> None:
    head = request_with_cookie("/up", 4000)[:-2] + b"Expect: 100-continue\r\n\r\n"
    body = b"d" * 5000
    [ex] = run(
        records_of(
            SimConnection(),
            [
                (IN, head, MS),
                (OUT, b"HTTP/1.1 100 Continue\r\n\r\n", 2 * MS),
                (IN, body, 3 * MS),
                (OUT, response(201), 4 * MS),
            ],
        )
    )
    assert ex.response is not None and ex.response.head.status == 201
    assert ex.request.size == len(head) + len(body)


def test_an_early_answer_to_an_upload_whose_head_ran_past_the_budget_leaves_no_parse_error() -> (
    None
):
    tracker = ConnectionTracker()
    upload = request_with_cookie("/upload", 4000, body=b"d" * 6500)
    out = run(
        records_of(
            SimConnection(),
            [
                (IN, upload[:4600], MS),
                (OUT, response(413), 2 * MS),
                (IN, upload[4600:], 3 * MS),  # the rest, sent before the answer arrived
                (IN, request("/next"), 4 * MS),
                (OUT, response(200), 5 * MS),
            ],
        ),
        tracker,
    )
    assert [(e.request.head.target, e.response and e.response.head.status) for e in out] == [
        ("/upload", 413),
        ("/next", 200),
    ]
    assert tracker.stats.parser.parse_errors == 0
    assert tracker.stats.parser.lost_starts == 0 and tracker.stats.unmatched_responses == 0


def test_a_response_whose_head_runs_past_the_budget_ends_at_its_last_write() -> None:
    cookies = "".join(f"Set-Cookie: k{i}={'v' * 200}\r\n" for i in range(20))
    big = f"HTTP/1.1 200 OK\r\n{cookies}Content-Length: 2\r\n\r\nok".encode()
    out = run(
        records_of(
            SimConnection(stash_requests=False),
            [
                (IN, request("/login"), 1 * MS),
                (OUT, big, 3 * MS),
                (IN, request("/next"), 50 * MS),
                (OUT, response(), 51 * MS),
            ],
        )
    )
    assert [e.request.head.target for e in out] == ["/login", "/next"]
    login = out[0].response
    assert login is not None and login.head.status == 200 and login.size == len(big)
    assert login.end_ns == 3 * MS


def in_pieces(data: bytes, size: int, first_ms: int) -> list[Step]:
    return [
        (IN, data[i : i + size], (first_ms + i // size) * MS) for i in range(0, len(data), size)
    ]


def test_a_head_whose_budget_ends_with_a_read_is_paired_and_the_next_ones_too() -> None:
    """Reads of 1,024 bytes spend the 3,072-byte budget exactly: no record says the head was
    cut, and the reads after it send no record at all. Only the answer's start tells."""
    big = request_with_cookie("/a", 6000)
    steps = [*in_pieces(big, 1024, 1), (OUT, response(404), 20 * MS)]
    steps += [(IN, request("/b"), 21 * MS), (OUT, response(201), 22 * MS)]
    steps += [(IN, request("/c"), 23 * MS), (OUT, response(202), 24 * MS)]
    tracker = ConnectionTracker()
    out = run(records_of(SimConnection(stash_requests=False), steps), tracker)
    assert [(e.request.head.target, e.response and e.response.head.status) for e in out] == [
        ("/a", 404),
        ("/b", 201),
        ("/c", 202),
    ]
    assert out[0].request.size == len(big)
    assert tracker.stats.parser.cut_heads == 1 and tracker.stats.unmatched_responses == 0


def test_a_response_head_whose_budget_ends_with_a_write_ends_at_that_write() -> None:
    cookies = "".join(f"Set-Cookie: k{i}={'v' * 200}\r\n" for i in range(20))
    big = f"HTTP/1.1 200 OK\r\n{cookies}Content-Length: 2\r\n\r\nok".encode()
    writes = [(OUT, big[i : i + 1024], (3 + i // 1024) * MS) for i in range(0, len(big), 1024)]
    steps = [(IN, request("/login"), 1 * MS), *writes, (IN, request("/next"), 50 * MS)]
    out = run(records_of(SimConnection(stash_requests=False), [*steps, (OUT, response(), 51 * MS)]))
    assert [e.request.head.target for e in out] == ["/login", "/next"]
    login = out[0].response
    assert login is not None and login.size == len(big)
    assert login.end_ns == writes[-1][2]


def test_a_head_whose_budget_ends_with_a_read_and_whose_connection_closes_is_incomplete() -> None:
    big = request_with_cookie("/gone", 6000)
    [ex] = run(records_of(SimConnection(stash_requests=False), in_pieces(big, 1024, 1), 30 * MS))
    assert ex.request.head.target == "/gone" and ex.response is None and not ex.complete


def totals_of(conn: SimConnection) -> ConnTotals:
    return ConnTotals(
        conn.conn_id, conn.in_bytes, conn.in_last_ns, conn.out_bytes, conn.out_last_ns
    )


def big_head_response() -> bytes:
    cookies = "".join(f"Set-Cookie: k{i}={'v' * 200}\r\n" for i in range(20))
    return f"HTTP/1.1 200 OK\r\n{cookies}Content-Length: 2\r\n\r\nok".encode()


@pytest.mark.parametrize("write_size", [5000, 1024], ids=["cut-in-a-write", "cut-between-writes"])
def test_a_response_whose_head_was_cut_ends_after_a_second_of_silence(write_size: int) -> None:
    """On an idle keep-alive connection no next request ends it; the kernel's totals, once
    both directions have been silent for a second, do, at its last write."""
    big = big_head_response()
    writes = [
        (OUT, big[i : i + write_size], (3 + i // write_size) * MS)
        for i in range(0, len(big), write_size)
    ]
    conn = SimConnection(stash_requests=False)
    tracker = ConnectionTracker()
    assert run(records_of(conn, [(IN, request("/login"), 1 * MS), *writes]), tracker) == []
    last_write = writes[-1][2]
    assert tracker.stalled(now_ns=last_write + 500 * MS, quiet_ns=100 * MS) == []
    now = last_write + 1_100 * MS
    assert tracker.stalled(now_ns=now, quiet_ns=100 * MS) == [((conn.tgid, conn.fd), conn.conn_id)]
    [ex] = tracker.settle(conn.tgid, conn.fd, totals_of(conn), now)
    assert ex.request.head.target == "/login"
    assert ex.response is not None and ex.response.head.status == 200
    assert ex.response.size == len(big) and ex.response.end_ns == last_write


def test_a_response_whose_head_was_cut_is_not_ended_while_its_bytes_still_move() -> None:
    """Writes past the budget send no record: only the kernel's totals show them going on."""
    big = big_head_response() + b"x" * 100_000
    head = big.replace(b"Content-Length: 2", b"Content-Length: 100002")
    conn = SimConnection(stash_requests=False)
    tracker = ConnectionTracker()
    steps = [(IN, request("/stream"), 1 * MS), (OUT, head[:5000], 2 * MS)]
    steps += [(OUT, head[i : i + 5000], 2_000 * MS + i) for i in range(5000, len(head), 5000)]
    assert run(records_of(conn, steps), tracker) == []
    now = 2_500 * MS  # records stopped 2.5 s ago; the last bytes moved 0.5 s ago
    assert tracker.stalled(now_ns=now, quiet_ns=100 * MS) != []
    assert tracker.settle(conn.tgid, conn.fd, totals_of(conn), now) == []
    [ex] = tracker.settle(conn.tgid, conn.fd, totals_of(conn), now + 600 * MS)
    assert ex.response is not None and ex.response.size == len(head)
    assert ex.response.end_ns == conn.out_last_ns


def test_a_connection_waiting_on_a_cut_head_is_not_asked_about_every_100_ms() -> None:
    """Kernel totals never end a head kept to its cut: only a start or the close do."""
    tracker = ConnectionTracker()
    run(records_of(SimConnection(), [(IN, request_with_cookie("/a", 6000), MS)]), tracker)
    assert tracker.stats.parser.cut_heads == 1
    assert tracker.stalled(now_ns=500 * MS, quiet_ns=100 * MS) == []


def test_an_upgrade_ends_a_request_whose_head_ran_past_the_budget() -> None:
    head = (
        request_with_cookie("/ws", 6000)[:-2] + b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    [ex] = run(
        records_of(SimConnection(), [(IN, head, MS), (OUT, switching, 2 * MS)], close_at=9 * MS)
    )
    assert ex.response is not None and ex.response.head.status == 101
    assert ex.request.size == len(head) and ex.request.complete


def test_a_request_line_cut_in_its_query_still_has_its_method_and_path() -> None:
    tracker = ConnectionTracker()
    long_target = "/search?q=" + "x" * 4000
    steps = [(IN, request(long_target), MS), (OUT, response(), 2 * MS)]
    [ex] = run(records_of(SimConnection(), steps), tracker)
    assert ex.request.head.method == "GET"
    assert ex.request.head.target.startswith("/search?q=xxx")
    assert ex.request.head.version == ""  # not seen
    assert ex.request.size == len(request(long_target))
    assert ex.response is not None and ex.response.head.status == 200
    assert tracker.stats.parser.cut_heads == 1


def test_a_request_line_cut_in_its_path_is_still_a_lost_start() -> None:
    tracker = ConnectionTracker()
    steps = [(IN, request("/" + "p" * 4000), MS), (OUT, response(), 2 * MS)]
    assert run(records_of(SimConnection(), steps), tracker) == []
    assert tracker.stats.parser.lost_starts == 1 and tracker.stats.parser.cut_heads == 0


def test_webdav_and_cache_purge_requests_are_exchanges_like_any_other() -> None:
    propfind = (
        b"PROPFIND /remote.php/dav/files/ann/ HTTP/1.1\r\nHost: t\r\nDepth: 1\r\n"
        b"Content-Type: application/xml\r\nContent-Length: 14\r\n\r\n<d:propfind/>\n"
    )
    multi = b"HTTP/1.1 207 Multi-Status\r\nContent-Length: 5\r\n\r\n<ok/>"
    out = run(
        records_of(
            SimConnection(),
            [
                (IN, propfind, MS),
                (OUT, multi, 2 * MS),
                (IN, b"PURGE /hello HTTP/1.1\r\nHost: t\r\n\r\n", 3 * MS),
                (OUT, response(200), 4 * MS),
            ],
        )
    )
    assert [(e.request.head.method, e.response and e.response.head.status) for e in out] == [
        ("PROPFIND", 207),
        ("PURGE", 200),
    ]
    assert out[0].request.size == len(propfind)


def test_an_fd_reused_by_a_new_connection_ends_the_old_one() -> None:
    tracker = ConnectionTracker()
    old = SimConnection(conn_id=1, stash_requests=False)
    run(records_of(old, [(IN, request("/old"), MS)]), tracker)
    new = SimConnection(conn_id=2)
    out = run(records_of(new, [(IN, request("/new"), 5 * MS), (OUT, response(), 6 * MS)]), tracker)
    assert [(e.request.head.target, e.complete) for e in out] == [("/old", False), ("/new", True)]


def three_exchanges(conn: SimConnection | None = None) -> list[Record]:
    steps = [
        (IN, request("/a"), MS),
        (OUT, response(), 2 * MS),
        (IN, request("/b"), 3 * MS),
        (OUT, response(500), 4 * MS),
        (IN, request("/c"), 5 * MS),
        (OUT, response(201), 6 * MS),
    ]
    return records_of(conn or SimConnection(), steps, close_at=7 * MS)


def test_only_a_connections_first_record_carries_its_thread_name_and_every_exchange_keeps_it() -> (
    None
):
    records = three_exchanges(SimConnection(comm="api-worker"))
    # The first PAIR record decodes into the request and the response.
    assert [r.thread_comm for r in records] == ["api-worker"] * 2 + [""] * (len(records) - 2)
    out = run(records)
    assert [e.thread_comm for e in out] == ["api-worker"] * 3


def test_a_first_record_that_arrives_after_the_second_still_names_the_connection() -> None:
    records = three_exchanges(SimConnection(comm="api-worker"))
    assert records[2].thread_comm == ""
    out = run([records[2], records[3], records[0], records[1], *records[4:]])
    assert [e.thread_comm for e in out] == ["api-worker"] * 3


def four_unpaired_exchanges(conn_id: int = 1) -> list[Record]:
    """/a to /d answered 200 to 203, one record per request and per response, then a close."""
    steps = [
        step
        for i, path in enumerate("abcd")
        for step in (
            (IN, request(f"/{path}"), (2 * i + 1) * MS),
            (OUT, response(200 + i), (2 * i + 2) * MS),
        )
    ]
    conn = SimConnection(conn_id=conn_id, stash_requests=False)
    return records_of(conn, steps, close_at=9 * MS)


TRUTH = {"/a": 200, "/b": 201, "/c": 202, "/d": 203}


def assert_never_mispaired(out: list[ObservedExchange]) -> None:
    for path, status, _complete in outcomes(out):
        assert status is None or TRUTH[path] == status, f"{path} reported with {status}"


def outcomes(out: list[ObservedExchange]) -> list[tuple[str, int | None, bool]]:
    return [
        (e.request.head.target, e.response.head.status if e.response else None, e.complete)
        for e in out
    ]


ALL_THREE = [("/a", 200, True), ("/b", 500, True), ("/c", 201, True)]


def test_lost_records_abandon_what_was_in_flight_without_reporting_a_failure() -> None:
    records = three_exchanges()
    del records[3]  # both ring buffers refused /b's response
    tracker = ConnectionTracker()
    out = run(records, tracker)
    assert outcomes(out) == [("/a", 200, True)], "what follows the gap waits for it"
    out += tracker.end_batch()
    assert len(out) == 1, "the gap may still fill from the spill ring in the next batch"
    out += tracker.end_batch()
    assert outcomes(out) == [("/a", 200, True), ("/c", 201, True)]
    assert tracker.stats.lost_records == 1
    assert tracker.stats.abandoned_requests == 1
    assert tracker.stats.incomplete == 0
    assert len(tracker) == 0, "the held close ended the connection"


def test_a_record_that_arrives_after_its_successors_is_put_back_in_its_place() -> None:
    records = three_exchanges()
    records.append(records.pop(3))  # /b's response came through the spill ring, read last
    tracker = ConnectionTracker()
    assert outcomes(run(records, tracker)) == ALL_THREE
    assert tracker.stats.lost_records == 0
    assert tracker.stats.resequenced_records == len(records) - 4


def test_a_record_read_one_batch_late_is_waited_for() -> None:
    records = three_exchanges()
    late = records.pop(3)
    tracker = ConnectionTracker()
    out = run(records, tracker)
    out += tracker.end_batch()
    out += run([late], tracker)
    out += tracker.end_batch() + tracker.end_batch()
    assert outcomes(out) == ALL_THREE
    assert tracker.stats.lost_records == 0


def test_a_late_record_of_the_connection_an_fd_held_before_does_not_end_the_new_one() -> None:
    tracker = ConnectionTracker()
    old = records_of(SimConnection(conn_id=1), [(IN, request("/old"), MS)], close_at=2 * MS)
    new = SimConnection(conn_id=2, stash_requests=False)
    out = run([*old[:-1], *records_of(new, [(IN, request("/new"), 3 * MS)]), old[-1]], tracker)
    out += run(records_of(new, [(OUT, response(), 4 * MS)]), tracker)
    assert [(e.request.head.target, e.complete) for e in out] == [("/old", False), ("/new", True)]


def test_a_gap_with_too_many_records_behind_it_is_given_up_at_once() -> None:
    records = three_exchanges()
    del records[1]
    tracker = ConnectionTracker(TrackerLimits(max_held_records=2))
    out = run(records, tracker)
    assert outcomes(out) == [("/b", 500, True), ("/c", 201, True)]
    assert tracker.stats.lost_records == 1 and tracker.stats.abandoned_requests == 1


def test_a_record_that_repeats_a_number_is_dropped_and_its_connection_resynchronised() -> None:
    records = three_exchanges()
    records[2] = records[2]._replace(seq=records[1].seq)  # two CPUs took the same number
    tracker = ConnectionTracker()
    out = run(records, tracker) + tracker.end_batch() + tracker.end_batch()
    assert outcomes(out) == [("/a", 200, True), ("/c", 201, True)]
    assert tracker.stats.late_records == 1
    assert tracker.stats.lost_records == 1  # the number the repeat should have had


def test_a_record_that_comes_after_its_gap_was_given_up_is_never_paired_on_a_guess() -> None:
    r = four_unpaired_exchanges()
    tracker = ConnectionTracker(TrackerLimits(max_held_records=2))
    out = run([r[0], r[1], r[3], r[4], r[5]], tracker)  # the third held record gives 2 up
    out += run([r[2]], tracker)  # /b's request, too late
    out += run(r[6:], tracker) + tracker.end_batch() + tracker.end_batch()
    assert_never_mispaired(out)
    assert tracker.stats.late_records == 1
    assert ("/d", 203, True) in outcomes(out) and len(tracker) == 0


def test_a_second_gap_gets_its_own_two_batches() -> None:
    r = four_unpaired_exchanges()
    tracker = ConnectionTracker()
    out = run([r[0], r[2]], tracker) + tracker.end_batch()
    out += run([r[4], r[1]], tracker) + tracker.end_batch()  # gap 1 fills, gap 3 opens
    out += run([r[3], *r[5:]], tracker) + tracker.end_batch()
    assert outcomes(out) == [(p, s, True) for p, s in TRUTH.items()]
    assert tracker.stats.lost_records == 0


def test_a_connection_waiting_for_a_record_when_its_fd_is_reused_still_gets_it() -> None:
    old = four_unpaired_exchanges(conn_id=1)
    new = records_of(
        SimConnection(conn_id=2, stash_requests=False),
        [(IN, request("/new"), 20 * MS), (OUT, response(), 21 * MS)],
    )
    late = old.pop(3)  # /b's response came through the spill ring
    tracker = ConnectionTracker()
    out = run([*old, *new], tracker) + tracker.end_batch()
    out += run([late], tracker) + tracker.end_batch() + tracker.end_batch()
    assert sorted(outcomes(out)) == sorted(
        [*((p, s, True) for p, s in TRUTH.items()), ("/new", 200, True)]
    )
    assert tracker.stats.lost_records == 0 and tracker.stats.late_records == 0
    assert len(tracker) == 1, "the new connection goes on"


def test_a_connection_that_ends_after_its_successor_does_not_revive_the_successor() -> None:
    old = four_unpaired_exchanges(conn_id=1)
    late = old.pop(3)
    new = records_of(
        SimConnection(conn_id=2, stash_requests=False), [(IN, request("/new"), 20 * MS)], 22 * MS
    )
    tracker = ConnectionTracker()
    run([*old, *new], tracker)  # the new connection closes while the old one still waits
    run([late], tracker)  # the old one ends now, after its successor
    run([new[0]], tracker)  # a copy of the successor's request, read late
    assert len(tracker) == 0 and tracker.stats.late_records == 1


def test_sequence_numbers_wrap_around_without_a_break() -> None:
    records = [
        r._replace(seq=(r.seq + 2**32 - 3) % 2**32) for r in three_exchanges(SimConnection())
    ]
    tracker = ConnectionTracker()
    out = run(records[:1], tracker) + tracker.end_batch() + tracker.end_batch()
    rest = records[1:]
    rest.reverse()  # every record but the last waits for the ones before it, across the wrap
    out += run(rest, tracker)
    assert outcomes(out) == ALL_THREE
    assert tracker.stats.lost_records == 0 and len(tracker) == 0


def test_a_connection_first_seen_across_the_wrap_starts_at_its_earliest_record() -> None:
    records = [r._replace(seq=(r.seq + 2**32 - 4) % 2**32) for r in three_exchanges()]
    seen = [records[3], records[5], records[6]]  # numbered 2**32 - 1, 1, 2: 0 was lost
    tracker = ConnectionTracker()
    out = run(seen, tracker) + tracker.end_batch() + tracker.end_batch()
    assert tracker.stats.late_records == 0, "2**32 - 1 came first, not after 2"
    assert tracker.stats.lost_records == 1 and len(tracker) == 0
    assert out == []  # /b's response has no request, /c's request was lost


def test_a_late_record_of_an_ended_connection_does_not_bring_it_back() -> None:
    records = three_exchanges()
    tracker = ConnectionTracker(TrackerLimits(idle_timeout_ns=1000 * MS))
    out = run(records, tracker)
    out += run([records[2]], tracker)  # a copy of /b's request, read after the close
    out += tracker.end_batch() + tracker.end_batch() + tracker.expire(now_ns=10**12)
    assert outcomes(out) == ALL_THREE
    assert tracker.stats.late_records == 1 and len(tracker) == 0


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False))
def test_records_in_any_order_after_the_first_make_the_same_exchanges(rng: random.Random) -> None:
    records = three_exchanges()
    rest = records[1:]
    rng.shuffle(rest)
    tracker = ConnectionTracker()
    out = run(records[:1] + rest, tracker)
    assert outcomes(out) == ALL_THREE
    assert tracker.stats.lost_records == 0 and len(tracker) == 0


def test_a_small_request_and_its_response_travel_as_one_pair_record() -> None:
    conn = SimConnection()
    blobs = conn.emit(IN, request("/pair"), 1 * MS) + conn.emit(OUT, response(201), 4 * MS)
    assert len(blobs) == 1
    [ex] = run(
        records_of(SimConnection(), [(IN, request("/pair"), 1 * MS), (OUT, response(201), 4 * MS)])
    )
    assert (ex.request.head.target, ex.response.head.status if ex.response else 0) == ("/pair", 201)
    assert ex.latency_ns == 3 * MS


def test_a_second_request_before_the_first_answer_sends_the_first_on_its_own() -> None:
    conn = SimConnection()
    first = conn.emit(IN, request("/a"), 1 * MS)
    second = conn.emit(IN, request("/b"), 2 * MS)
    answers = conn.emit(OUT, response(200, b"a"), 3 * MS) + conn.emit(OUT, response(404), 4 * MS)
    assert (len(first), len(second), len(answers)) == (0, 1, 2)
    conn2 = SimConnection()
    steps = [
        (IN, request("/a"), 1 * MS),
        (IN, request("/b"), 2 * MS),
        (OUT, response(200, b"a"), 3 * MS),
        (OUT, response(404), 4 * MS),
    ]
    out = run(records_of(conn2, steps))
    assert [(e.request.head.target, e.response.head.status) for e in out if e.response] == [
        ("/a", 200),
        ("/b", 404),
    ]


def test_a_request_larger_than_the_stash_is_sent_at_once() -> None:
    conn = SimConnection()
    big = request("/upload", "POST", b"x" * 2000)
    assert len(conn.emit(IN, big, 1 * MS)) == 1


def test_a_stashed_request_whose_connection_closes_is_an_incomplete_exchange() -> None:
    conn = SimConnection()
    [ex] = run(records_of(conn, [(IN, request("/hang"), 1 * MS)], close_at=5 * MS))
    assert ex.request.head.target == "/hang" and not ex.complete


def test_connections_beyond_the_limit_evict_the_least_recently_active() -> None:
    tracker = ConnectionTracker(TrackerLimits(max_connections=10))
    for fd in range(50):
        conn = SimConnection(fd=fd, stash_requests=False)
        run(records_of(conn, [(IN, request(), fd * MS)]), tracker)
    assert len(tracker) == 10
    assert tracker.stats.evicted_connections == 40


def test_idle_connections_expire() -> None:
    tracker = ConnectionTracker(TrackerLimits(idle_timeout_ns=1000 * MS))
    run(records_of(SimConnection(fd=1, stash_requests=False), [(IN, request(), MS)]), tracker)
    assert tracker.expire(now_ns=500 * MS) == []
    [ex] = tracker.expire(now_ns=2000 * MS)
    assert not ex.complete and len(tracker) == 0


segments = st.lists(
    st.tuples(
        st.sampled_from([IN, OUT]),
        st.one_of(
            st.binary(max_size=300),
            st.sampled_from(
                [request(), response(), b"GET ", b"HTTP/1.1 ", b"0\r\n\r\n", b"\r\n\r\n"]
            ),
        ),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(segments, st.integers(min_value=64, max_value=4096), st.booleans())
def test_random_bytes_never_raise_and_never_grow_state_without_bound(
    steps: list[tuple[StreamDirection, bytes]], capture: int, close: bool
) -> None:
    tracker = ConnectionTracker(TrackerLimits(max_connections=4, max_pending_requests=8))
    for fd in range(3):
        conn = SimConnection(fd=fd, capture_bytes=capture)
        timed = [(d, data, i * MS) for i, (d, data) in enumerate(steps)]
        run(records_of(conn, timed, close_at=10_000 * MS if close else None), tracker)
    tracker.expire(now_ns=10**15)
    assert len(tracker) == 0
