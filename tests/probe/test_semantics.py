"""Business errors in bodies: the corpus, the status policy, user rules, labels, the command."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from bench.semantics_corpus import UNSET, CorpusCase, load_corpus
from probe import semantics
from probe.body import parse_json_prefix
from probe.errors import ConfigFieldError
from probe.exchanges import ResponseJudge
from probe.model import NOT_INSPECTED, ResponseView, Verdict
from probe.semantics import (
    CLEAN,
    OTHER,
    Classifier,
    TopErrorTypes,
    load_semantic_rules,
    outline_in_python,
    sanitize_error_type,
    shallow_needles_in_python,
)
from slo.cli import main
from tests.ci import built_extension

DATA = Path(__file__).parent / "data" / "semantics"
SLACK_FAILURE = b'{"ok":false,"error":"invalid_auth"}'


def _view(body: bytes, status: int = 200, content_type: str = "application/json") -> ResponseView:
    return ResponseView(
        service="payments",
        route="/v1/charges",
        method="POST",
        status=status,
        headers=(("content-type", content_type),),
        body=body,
    )


def _corpus_params() -> list[Any]:
    params = []
    for case in load_corpus():
        marks = [pytest.mark.xfail(strict=True, reason=case.known_miss)] if case.known_miss else []
        params.append(pytest.param(case, id=f"{case.source}: {case.name}", marks=marks))
    return params


@pytest.mark.parametrize("case", _corpus_params())
def test_the_builtin_detectors_get_the_corpus_right(case: CorpusCase) -> None:
    verdict = Classifier().classify(case.view)
    assert verdict.business_error is case.expect_error
    if case.expect_error and case.expect_type != UNSET:
        assert verdict.error_type == case.expect_type


def test_the_corpus_is_broad_enough() -> None:
    cases = load_corpus()
    assert len(cases) >= 150
    assert sum(c.expect_error for c in cases) >= 60
    assert sum(not c.expect_error for c in cases) >= 60
    assert {"gzip", "deflate"} <= {dict(c.view.headers).get("content-encoding") for c in cases}
    assert sum(c.view.body_truncated for c in cases) >= 15


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(500, id="a 5xx already counts as an error"),
        pytest.param(503, id="a 503 too"),
        pytest.param(400, id="a 4xx is the client's mistake"),
        pytest.param(429, id="a 429 too"),
        pytest.param(302, id="a redirect is not inspected"),
        pytest.param(101, id="an upgrade is not inspected"),
    ],
)
def test_only_2xx_answers_are_builtin_candidates(status: int) -> None:
    assert Classifier().classify(_view(SLACK_FAILURE, status=status)) == NOT_INSPECTED


@pytest.mark.parametrize("status", [200, 201, 202, 299])
def test_every_2xx_answer_is_a_candidate(status: int) -> None:
    assert Classifier().classify(_view(SLACK_FAILURE, status=status)).business_error


@pytest.mark.parametrize(
    ("body", "content_type", "verdict"),
    [
        pytest.param(b'{"user":"ada"}', "application/json", CLEAN, id="clean JSON was inspected"),
        pytest.param(b'{"ok":true}', "application/json", CLEAN, id="parsed clean JSON too"),
        pytest.param(b"<a>fine</a>", "application/xml", CLEAN, id="clean XML was inspected"),
        pytest.param(b"<html>Error</html>", "text/html", NOT_INSPECTED, id="HTML is not"),
        pytest.param(b"ERROR", "text/plain", NOT_INSPECTED, id="plain text is not"),
        pytest.param(b"\x89PNG\r\n", "image/png", NOT_INSPECTED, id="an image is not"),
        pytest.param(b"", "application/json", NOT_INSPECTED, id="an empty body is not"),
    ],
)
def test_a_verdict_says_whether_the_body_was_inspected(
    body: bytes, content_type: str, verdict: Verdict
) -> None:
    assert Classifier().classify(_view(body, content_type=content_type)) == verdict


def test_the_classifier_is_the_response_judge_the_exchange_builder_takes() -> None:
    judge: ResponseJudge = Classifier()  # mypy checks the protocol
    lookup = {"content-type": "application/json"}.get
    view = ResponseView("payments", "/v1/charges", "POST", 200, (), SLACK_FAILURE, False, lookup)
    verdict = judge.classify(view)
    assert verdict == Verdict(True, "invalid_auth", "builtin:ok_false")


def test_a_coding_that_cannot_be_undone_is_not_inspected() -> None:
    view = ResponseView("s", "/", "GET", 200, (("content-encoding", "br"),), SLACK_FAILURE)
    assert Classifier().classify(view) == NOT_INSPECTED


def test_a_body_longer_than_any_capture_is_cut_first() -> None:
    body = SLACK_FAILURE[:-1] + b',"pad":"' + b"x" * 200_000 + b'"}'
    verdict = Classifier().classify(_view(body))
    assert verdict == Verdict(True, "invalid_auth", "builtin:ok_false")


# --- user rules ------------------------------------------------------------------------------


def _rule_cases() -> list[Any]:
    cases = yaml.safe_load((DATA / "rules.yaml").read_text(encoding="utf-8"))
    return [pytest.param(case, id=case["name"]) for case in cases]


def _response(spec: dict[str, Any]) -> ResponseView:
    body = str(spec["body"]).encode()
    headers = [("content-type", spec.get("content_type", "application/json"))]
    headers += [(name, value) for name, value in spec.get("headers", {}).items()]
    if spec.get("encoding") == "gzip":
        body = gzip.compress(body)
        headers.append(("content-encoding", "gzip"))
    cut = spec.get("cut")
    return ResponseView(
        service=spec.get("service", "payments"),
        route=spec.get("route", "/v1/charges"),
        method=spec.get("method", "POST"),
        status=spec.get("status", 200),
        headers=tuple(headers),
        body=body[:cut] if cut else body,
        body_truncated=bool(cut),
    )


@pytest.mark.parametrize("case", _rule_cases())
def test_user_rules_decide_before_the_builtin_detectors(case: dict[str, Any]) -> None:
    classifier = Classifier(load_semantic_rules(case["semantics"]))
    verdict = classifier.classify(_response(case["response"]))
    expect = case["expect"]
    assert verdict == Verdict(
        expect["business_error"],
        expect["error_type"],
        expect["rule"],
        expect.get("inspected", True),
    )


def _bad_rule_cases() -> list[Any]:
    cases = yaml.safe_load((DATA / "bad_rules.yaml").read_text(encoding="utf-8"))
    return [pytest.param(case["semantics"], case["error"], id=case["name"]) for case in cases]


@pytest.mark.parametrize(("section", "message"), _bad_rule_cases())
def test_a_bad_semantics_section_is_rejected_with_the_field_path(
    section: object, message: str
) -> None:
    with pytest.raises(ConfigFieldError) as raised:
        load_semantic_rules(section)
    assert str(raised.value) == message


def test_a_missing_section_means_builtin_detectors_only() -> None:
    rules = load_semantic_rules(None)
    assert rules.builtin
    assert rules.rules == ()


# --- error types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("card_declined", "card_declined"),
        ("  PERMISSION_DENIED ", "PERMISSION_DENIED"),
        ("https://example.com/probs/out-of-credit", "out-of-credit"),
        ("https://api.twitter.com/2/problems/resource-not-found/", "resource-not-found"),
        ("com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "ResourceNotFoundException"),
        ("Not Found", "Not_Found"),
        ("AuthFailure.SignatureFailure", "AuthFailure.SignatureFailure"),
        (40013, "40013"),
        (-32000, "-32000"),
        ("x" * 200, None),
        ("a" * 80, "a" * 64),
        ("the card was declined by the bank", None),
        ("Bad Request: chat not found", None),
        ("[5]: document missing", None),
        ("余额不足", None),
        ("", None),
        (None, None),
        (True, None),
        (1.5, None),
        ({"code": 1}, None),
    ],
)
def test_an_error_type_is_sanitised_into_a_short_label(raw: object, label: str | None) -> None:
    assert sanitize_error_type(raw) == label


def test_the_first_types_of_an_endpoint_keep_their_labels_and_the_rest_are_other() -> None:
    top = TopErrorTypes(per_endpoint=2)
    labels = [top.label("checkout", t) for t in ("a", "b", "c", "a", "b", "c")]
    assert labels == ["a", "b", OTHER, "a", "b", OTHER]


def test_a_type_that_becomes_frequent_replaces_the_rarest_label() -> None:
    top = TopErrorTypes(per_endpoint=2)
    for error_type in ("a", "a", "a", "b"):
        top.label("checkout", error_type)
    assert [top.label("checkout", "c") for _ in range(3)] == [OTHER, "c", "c"]
    assert top.label("checkout", "b") == OTHER
    assert top.label("checkout", "a") == "a"


def test_labels_are_kept_per_endpoint_and_none_stays_none() -> None:
    top = TopErrorTypes(per_endpoint=1)
    assert [top.label(e, "x") for e in ("a", "b")] == ["x", "x"]
    assert top.label("a", None) is None


def test_endpoints_beyond_the_limit_get_other() -> None:
    top = TopErrorTypes(per_endpoint=1, max_endpoints=2)
    assert [top.label(e, "x") for e in ("a", "b", "c")] == ["x", "x", OTHER]


def test_a_frequent_type_is_admitted_through_a_flood_of_one_off_types() -> None:
    top = TopErrorTypes(per_endpoint=2)
    for error_type in ("a", "b"):
        top.label("checkout", error_type)
    labels = []
    for i in range(1_000):
        top.label("checkout", f"noise-{i}")
        labels.append(top.label("checkout", "card_declined"))
    assert labels[:1] == [OTHER]
    assert set(labels[10:]) == {"card_declined"}


def test_a_flood_of_distinct_types_keeps_memory_bounded() -> None:
    top = TopErrorTypes(per_endpoint=3)
    types = [f"type-{i}" for i in range(20_000)]
    for error_type in types[:10_000]:
        top.label("checkout", error_type)
    tracemalloc.start()
    try:
        labels = {top.label("checkout", error_type) for error_type in types[10_000:]}
        own = [tracemalloc.Filter(True, semantics.__file__)]  # not other tests' server threads
        grown = sum(
            s.size for s in tracemalloc.take_snapshot().filter_traces(own).statistics("filename")
        )
    finally:
        tracemalloc.stop()
    assert labels == {OTHER}
    assert grown < 20_000


# --- never raise -----------------------------------------------------------------------------

_CONTENT_TYPES = st.sampled_from(
    ["application/json", "text/xml", "text/plain", "", "application/problem+json; charset=utf-16"]
)


@given(st.binary(max_size=400), _CONTENT_TYPES, st.sampled_from([None, "gzip", "deflate", "br"]))
def test_random_bytes_never_make_the_classifier_raise(
    body: bytes, content_type: str, coding: str | None
) -> None:
    headers = [("content-type", content_type)] + ([("content-encoding", coding)] if coding else [])
    view = ResponseView("svc", "/", "GET", 200, tuple(headers), body, body_truncated=True)
    verdict = Classifier().classify(view)
    assert isinstance(verdict, Verdict)
    assert (
        verdict.error_type is None or sanitize_error_type(verdict.error_type) == verdict.error_type
    )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["error", "fail", "ok", "", "x y"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["ok", "error", "errors", "status", "code", "msg", "data", "id", "items"]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=15,
)


@given(_JSON, st.integers(min_value=1, max_value=400))
def test_error_shaped_json_cut_anywhere_never_makes_the_classifier_raise(
    document: object, cut: int
) -> None:
    body = json.dumps(document).encode()[:cut]
    Classifier().classify(_view(body))


# --- the command -----------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["classify", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_prints_one_json_line_for_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(SLACK_FAILURE)
    code, out, _ = _run(capsys, str(body))
    assert code == 0
    assert json.loads(out) == {
        "business_error": True,
        "error_type": "invalid_auth",
        "rule": "builtin:ok_false",
    }
    assert out.count("\n") == 1


def test_the_command_reads_stdin_and_takes_the_response_headers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(gzip.compress(b"<Error><Code>SlowDown</Code></Error>")))
    monkeypatch.setattr("sys.stdin", stdin)
    code, out, _ = _run(capsys, "--content-type", "application/xml", "--content-encoding", "gzip")
    assert code == 0
    assert json.loads(out)["error_type"] == "SlowDown"


def test_the_command_exits_0_for_a_clean_body_and_for_a_5xx(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(SLACK_FAILURE)
    code, out, _ = _run(capsys, "--status", "503", str(body))
    assert (code, json.loads(out)) == (
        0,
        {"business_error": False, "error_type": None, "rule": None},
    )


def test_the_command_applies_the_rules_of_the_config_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "bytewatch.yaml"
    config.write_text(
        "routes: {max_segments: 4}\n"
        "semantics:\n"
        "  rules:\n"
        "    - name: declined\n"
        "      service: payments\n"
        "      route: /v1/charges\n"
        "      status: [402]\n"
        "      when: {json: {field: error.code, equals: card_declined}}\n"
        "      error: true\n"
        "      type_from: error.decline_code\n"
    )
    body = tmp_path / "body.json"
    body.write_bytes(b'{"error":{"code":"card_declined","decline_code":"insufficient_funds"}}')
    argv = ["--config", str(config), "--service", "payments", "--route", "/v1/charges"]
    code, out, _ = _run(capsys, *argv, "--status", "402", str(body))
    assert (code, json.loads(out)["rule"], json.loads(out)["error_type"]) == (
        0,
        "declined",
        "insufficient_funds",
    )


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        pytest.param(
            "semantics:\n  rules:\n    - error: true\n      when:\n"
            "        json: {field: 'a..b', equals: 1}\n",
            "{config}:5:16: semantics.rules[0].when.json.field: not a field path",
            id="a bad rule names the file, the line and the field",
        ),
        pytest.param("semantics: [\n", "{config}:2:1: (syntax): invalid YAML", id="bad YAML"),
    ],
)
def test_a_bad_config_is_one_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config_text: str, message: str
) -> None:
    config = tmp_path / "bytewatch.yaml"
    config.write_text(config_text)
    body = tmp_path / "body.json"
    body.write_bytes(b"{}")
    code, out, err = _run(capsys, "--config", str(config), str(body))
    assert (code, out) == (2, "")
    assert err.startswith("bytewatch classify: " + message.format(config=config))
    assert err.count("\n") == 1


def test_an_unreadable_body_file_is_one_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.json"
    code, out, err = _run(capsys, str(missing))
    assert (code, out) == (2, "")
    assert err == f"bytewatch classify: {missing}: cannot read: No such file or directory\n"


def test_the_spelled_out_hints_are_exactly_the_listed_ones() -> None:
    from probe.semantics import _JSON_HINTS, _looked_at, worth_parsing_in_python

    for hint in _JSON_HINTS:
        assert _looked_at(b"{" + hint + b"}") is not None
        assert worth_parsing_in_python(b"{" + hint + b"}")
    assert _looked_at(b'{"id": 1, "name": "ada", "status": "active"}') is None
    assert not worth_parsing_in_python(b'{"id": 1, "name": "ada", "status": "active"}')


# Bodies made of the pre-check's words, their pieces and JSON around them, at every offset from
# the start of a 16-byte block (probe/_needles.c reads 16 positions at a time).
_PIECES = st.sampled_from(
    [b"rror", b"rro", b"fail", b"Fail", b'ode"', b'"ret', b"errno", b'"rc"', b'"fault"',
     b'"__type"', b"false", b'"ok":false', b'"success": false', b"tatus", b'"statusCode": 503',
     b'"status":"404"', b"ta", b"er", b'"', b"{", b"}", b", ", b"x", b"\xff", b"\n", b"od"]
)  # fmt: skip
_BODIES = st.lists(_PIECES, max_size=40).map(b"".join)


@given(_BODIES, st.binary(max_size=40))
def test_the_one_pass_pre_check_agrees_with_the_substring_tests(body: bytes, noise: bytes) -> None:
    from probe.semantics import _looked_at, worth_parsing_in_python

    for data in (body, noise + body, body + noise):
        if b"[" not in data:  # inside lists it looks at less (see the tests below)
            assert (_looked_at(data) is not None) == worth_parsing_in_python(data)


# The same pieces with lists, strings and escapes around them.
_NESTED_BODIES = st.lists(
    _PIECES | st.sampled_from([b"[", b"]", b'"', b'\\"', b"\\\\", b'{"items": [', b"]}"]),
    max_size=40,
).map(b"".join)


@given(_NESTED_BODIES)
@example(b"{" * 257 + b'["code"]')  # a list beyond 256 levels goes uncounted
@example(b'{"items": [{"ok":false}]}')  # a flag counts only where the detectors look
def test_the_needles_where_detectors_look_are_found_as_the_reference_finds_them(
    data: bytes,
) -> None:
    from probe.semantics import _NEEDLES, _looked_at, _worth_parsing_with

    reference = shallow_needles_in_python(data, _NEEDLES)
    assert built_extension("probe._needles").shallow(data, 0) == reference
    # The words' spellings ("ok":false, "status": 503) are looked for where the words are.
    expected = _worth_parsing_with(reference, outline_in_python(data) or data)
    if data.lstrip(b" \t\r\n").startswith(b"[") and b'"jsonrpc"' not in data:
        expected = False  # of a top-level list, the detectors read only JSON-RPC replies
    assert (_looked_at(data) is not None) == expected


def test_a_word_inside_a_list_of_records_is_not_where_a_detector_looks() -> None:
    from probe.semantics import _NEEDLES

    code, rror = 1 << _NEEDLES.index(b'ode"'), 1 << _NEEDLES.index(b"rror")
    records = b'{"items": [{"id": 1, "code": "A1"}, {"id": 2, "code": "B2"}]}'
    assert shallow_needles_in_python(records, _NEEDLES) == 0
    batch = b'[{"jsonrpc": "2.0", "error": {"code": -32601}}]'  # a top-level list counts
    assert shallow_needles_in_python(batch, _NEEDLES) & rror
    quoted = b'{"note": "[not a list] \\" {", "code": 7}'  # brackets inside strings are text
    assert shallow_needles_in_python(quoted, _NEEDLES) == code


# Documents of the words the detectors read, nested every way they can be.
_KEYS = st.sampled_from(
    ["error", "errors", "Error", "ok", "success", "status", "code", "message", "data", "items",
     "userErrors", "jsonrpc", "pay_response", "kind", "reason", "fault", "__type", "errcode",
     "ret", "rc", "id", "sub_code", "error_message", "httpStatus", "title", "type", "extensions"]
)  # fmt: skip
_VALUES = st.sampled_from(
    [True, False, None, 0, 1, 404, 503, "error", "fail", "Failure", "Status", "ok", "boom", ""]
)
# Small envelopes as leaves too, so that an error object turns up at every depth.
_DOCUMENTS = st.recursive(
    _VALUES | st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


@given(_DOCUMENTS, st.floats(min_value=0.3, max_value=1.0), st.booleans())
@example([{"jsonrpc": "2.0", "error": {"code": -32601}}], 1.0, False)  # a top-level list
@example({"pay_response": {"error": "boom"}}, 1.0, True)  # an envelope inside
@example({"data": {"createUser": {"userErrors": [{"code": "TAKEN"}]}}}, 1.0, False)
@example({"items": [{"id": 1, "code": "A1", "error": "boom"}]}, 1.0, False)  # in a list: clean
@example({"ok": True, "items": [{"ok": False}]}, 0.8, True)
@example(
    [{"id": 1, "error": "boom", "code": 7}, {"jsonrpc": "2.0", "error": {"code": 1}}], 1.0, False
)
@example([{"error": "boom", "code": 7}], 1.0, True)  # a list without JSON-RPC: clean
# Which error, read from a list's items once the outline has said there is one:
@example({"errors": [{"extensions": {"code": "FORBIDDEN"}}], "data": None}, 1.0, False)
@example({"errors": True, "items": [{"index": {"error": {"type": "mapper_parsing"}}}]}, 1.0, False)
@example({"data": {"pay": {"userErrors": [{"code": "CARD_DECLINED"}]}}}, 1.0, True)
# A list cut open keeps its member, as the whole parse keeps it: the JSend keys stay the same.
@example({"status": "error", "message": "boom", "data": [1, 2, 3]}, 0.93, False)
@example({"status": "error", "message": "boom", "details": [{"a": 1}]}, 0.86, True)
@example({"code": 0, "items": [[], [{"error": "x"}]], "ok": False}, 0.7, False)
@example({"errors": [{"message": "boom"}]}, 0.6, False)  # cut inside the list: it holds something
def test_looking_only_where_detectors_look_changes_no_verdict(
    document: object, kept: float, spaced: bool
) -> None:
    text = json.dumps(document, separators=(", ", ": ") if spaced else (",", ":"))
    body = text[: max(1, round(len(text) * kept))].encode()
    expected = _verdict_of_the_whole(body)
    assert Classifier().classify(_json_view(body)) == expected
    # The same through a classifier that remembers the outlines of every example before.
    assert _SEASONED.classify(_json_view(body)) == expected


_SEASONED = Classifier()


@pytest.mark.parametrize(
    "body",
    [
        # The cut-JSON scan reads a backslash before a line feed as a string cut there: the
        # whole body keeps only the error, where an outline would have read "ok" after it.
        b'{"error": "boom", "a": ["p\\\nq"], "ok": true}',
        b'{"error": "boom", "a": [1}], "ok": true}',  # not JSON
        b'{"errors": [{"message": "boom"}], "a": [[[[[[',  # cut deep inside
        b'\xef\xbb\xbf{"errors": [1], "data": {"items": []}}',  # UTF-8 with a byte-order mark
    ],
)
def test_the_verdict_on_an_outline_is_the_verdict_on_the_whole_body(body: bytes) -> None:
    assert Classifier().classify(_json_view(body)) == _verdict_of_the_whole(body)


def _json_view(body: bytes) -> ResponseView:
    return ResponseView("svc", "/r", "GET", 200, (("content-type", "application/json"),), body)


def _verdict_of_the_whole(body: bytes) -> Verdict:
    """What the built-in detectors say about a UTF-8 body, looking everywhere in all of it."""
    from probe.semantics import _json_verdict, worth_parsing_in_python

    if not worth_parsing_in_python(body):
        return CLEAN
    return _json_verdict(parse_json_prefix(body.decode("utf-8-sig")), problem=False) or CLEAN


def test_an_outline_keeps_the_objects_and_says_only_whether_a_list_below_the_top_is_empty() -> None:
    envelope = b'{"code": 0, "data": {"n": 2, "items": [{"id": 1}, {"id": 2}]}, "errors": [ ]}'
    assert outline_in_python(envelope) == (
        b'{"code": 0, "data": {"n": 2, "items": [0]}, "errors": []}'
    )
    batch = b'[{"jsonrpc": "2.0", "error": {"data": [1, [2]]}}, 3]'  # the top list stays whole
    assert outline_in_python(batch) == b'[{"jsonrpc": "2.0", "error": {"data": [0]}}, 3]'
    cut = b'{"status": "error", "data": [{"id": 1}, {"na'
    assert outline_in_python(cut) == b'{"status": "error", "data": ['
    assert parse_json_prefix('{"status": "error", "data": [') == {"status": "error", "data": [None]}
    quoted = b'{"note": "[not a list]", "l": ["]", "\\\\"]}'  # brackets inside strings are text
    assert outline_in_python(quoted) == b'{"note": "[not a list]", "l": [0]}'


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": 1, "code": "A1"}',  # no list to reduce
        b'[1, 2, "error"]',  # the top list only
        b"{" * 256 + b'["code"]' + b"}" * 256,  # too deep for shallow() to leave out: kept
    ],
)
def test_a_body_without_a_list_to_reduce_is_its_own_outline(body: bytes) -> None:
    assert outline_in_python(body) is body
    assert built_extension("probe._needles").outline(body) is body


@pytest.mark.parametrize(
    "body",
    [
        b'{"l": [1}], "ok": true}',  # a mismatched bracket: the scan gives up on those
        b'{"l": ["a\\\nb"], "ok": true}',  # the scan reads a backslash and line feed as a cut
        b"{" + b'"l": ' + b"[" * 257 + b"]" * 257 + b"}",  # deeper than the lexer follows
    ],
)
def test_a_body_is_parsed_whole_when_its_outline_would_not_say_the_same(body: bytes) -> None:
    assert outline_in_python(body) is None
    assert built_extension("probe._needles").outline(body) is None


@given(_NESTED_BODIES, st.binary(max_size=30))
@example(b'{"a": [' + b"[" * 255 + b"]" * 255 + b"]}", b"")  # 256 levels: the lexer's limit
@example(b'{"a": ["\\', b"\n]}")
def test_the_outline_is_made_as_the_reference_makes_it(body: bytes, noise: bytes) -> None:
    outline = built_extension("probe._needles").outline
    for data in (body, noise + body, body + noise, b"{" + noise + b"[" + body):
        assert outline(data) == outline_in_python(data)


# Documents whose strings hold brackets, quotes and backslashes, spaced every way, so that
# probe/_needles.c's 16-byte blocks begin and end everywhere in and around them.
_TRICKY_STRINGS = st.text(alphabet='[]{}"\\ \tab', max_size=20)
_TRICKY_DOCUMENTS = st.recursive(
    _TRICKY_STRINGS | st.integers() | st.none(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TRICKY_STRINGS, inner, max_size=4),
    max_leaves=30,
)


@given(_TRICKY_DOCUMENTS, st.sampled_from([None, 0, 1, 2]), st.floats(0.0, 1.0))
def test_the_outline_of_any_document_cut_anywhere_is_the_reference_s(
    document: object, indent: int | None, kept: float
) -> None:
    text = json.dumps({"doc": document}, indent=indent).encode()
    data = text[: round(len(text) * kept)]
    assert built_extension("probe._needles").outline(data) == outline_in_python(data)


@pytest.mark.parametrize("charset", ["utf-8", "utf-16", "shift_jis"])
def test_a_clean_body_is_judged_on_its_outline_in_the_charsets_where_brackets_are_bytes(
    charset: str,
) -> None:
    from probe.semantics import _Body, _looked_at

    document = {"code": 0, "msg": "成功", "data": {"items": [{"id": 1, "name": "ada"}]}}
    body = json.dumps(document, ensure_ascii=False).encode(charset)
    content_type = f"application/json; charset={charset}"
    view = ResponseView("svc", "/r", "GET", 200, (("content-type", content_type),), body)
    judged = _Body(view)
    looked_at = _looked_at(judged.ascii_bytes, lexable=judged.lexable)
    assert looked_at is not None
    if charset == "shift_jis":  # a character's second byte may be a bracket's: parsed whole
        assert looked_at == judged.ascii_bytes
        assert judged.outline_codec is None
    else:
        assert judged.outline_codec is not None
        outline = parse_json_prefix(looked_at.decode(judged.outline_codec))
        assert outline == {"code": 0, "msg": "成功", "data": {"items": [0]}}
    assert Classifier().classify(view) == CLEAN


def test_answers_that_differ_only_inside_their_lists_share_a_remembered_verdict() -> None:
    from probe.semantics import OutlineVerdicts

    outlines = OutlineVerdicts(size=2, longest=64)
    judge = [
        b'{"code": 0, "msg": "ok", "data": {"items": [1, 2]}}',
        b'{"code": 0, "msg": "ok", "data": {"items": [3, 4, 5]}}',
    ]
    for body in judge:
        assert outlines.verdict(outline_in_python(body) or body, "utf-8") == CLEAN
    assert len(outlines) == 1  # both outlines read {"items": [0]}
    failing = b'{"code": 7, "msg": "boom", "data": {"items": [1]}}'
    verdict = outlines.verdict(outline_in_python(failing) or failing, "utf-8")
    assert verdict is not None and verdict.error_type == "7"
    long = b'{"code": 0, "msg": "' + b"x" * 64 + b'", "items": [1]}'
    assert outlines.verdict(outline_in_python(long) or long, "utf-8") == CLEAN
    assert len(outlines) == 2, "an outline longer than `longest` is not kept"
    third = b'{"code": 0, "msg": "fine", "items": [1]}'
    outlines.verdict(outline_in_python(third) or third, "utf-8")
    assert len(outlines) == 1, "full: dropped, then the new one kept"


def test_a_remembered_verdict_is_only_for_the_charset_its_outline_was_read_in() -> None:
    # "成功" in UTF-8 is the success word that clears a code; the same bytes read as cp1252
    # are other letters, and code 7 is then an error.
    body = json.dumps({"code": 7, "msg": "成功", "items": [1, 2]}, ensure_ascii=False).encode()
    classifier = Classifier()
    verdicts = []
    for charset in ("utf-8", "windows-1252"):
        content_type = f"application/json; charset={charset}"
        view = ResponseView("svc", "/r", "GET", 200, (("content-type", content_type),), body)
        verdicts.append(classifier.classify(view))
    assert verdicts[0] == CLEAN
    assert verdicts[1].business_error and verdicts[1].error_type == "7"


def test_a_shift_jis_character_that_ends_in_a_backslash_does_not_hide_an_error() -> None:
    # Read as bytes, the backslash that ends "ソ" escapes its closing quote, and "[" then opens a
    # list that seems to hold the error member.
    body = json.dumps({"a": "ソ", "b": "[", "error": "boom"}, ensure_ascii=False)
    content_type = "application/json; charset=shift_jis"
    view = ResponseView(
        "svc", "/r", "GET", 200, (("content-type", content_type),), body.encode("shift_jis")
    )
    verdict = Classifier().classify(view)
    assert verdict.business_error and verdict.rule == "builtin:error_field"


@given(_BODIES, st.integers(min_value=0, max_value=(1 << 11) - 1))
def test_the_needle_search_finds_each_needle_that_occurs(body: bytes, stop: int) -> None:
    needles = built_extension("probe._needles")
    from probe.semantics import _NEEDLES

    occurs = sum(1 << k for k, needle in enumerate(_NEEDLES) if needle in body)
    found = needles.present(body, 0)
    assert found == occurs
    early = needles.present(body, stop)
    assert early & ~occurs == 0, "never a needle that is not there"
    assert early == occurs or early & stop, "short only when a needle of `stop` was found"
