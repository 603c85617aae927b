"""Captured bodies: content codings, media kinds, charsets and JSON cut at any byte."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from probe.body import (
    MAX_DECODED,
    JsonCut,
    MediaKind,
    _repaired,
    codec_of,
    decode_content,
    media_kind,
    media_type_of,
    parse_json_prefix,
    scan_in_python,
    text_of,
)
from tests.ci import built_extension

DATA = Path(__file__).parent / "data" / "semantics"
DOCUMENT = b'{"ok":false,"error":"invalid_auth","detail":"' + b"x" * 2000 + b'"}'


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoded", "coding"),
    [
        pytest.param(gzip.compress(DOCUMENT), "gzip", id="gzip"),
        pytest.param(gzip.compress(DOCUMENT), "x-gzip", id="the x-gzip alias"),
        pytest.param(zlib.compress(DOCUMENT), "deflate", id="zlib-wrapped deflate"),
        pytest.param(_raw_deflate(DOCUMENT), "deflate", id="raw deflate sent as deflate"),
        pytest.param(DOCUMENT, "identity", id="identity"),
        pytest.param(DOCUMENT, None, id="no coding"),
        pytest.param(gzip.compress(gzip.compress(DOCUMENT)), "gzip, gzip", id="two codings"),
    ],
)
def test_a_content_coding_is_undone(encoded: bytes, coding: str | None) -> None:
    assert decode_content(encoded, coding) == DOCUMENT[:MAX_DECODED]


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_cut_compressed_body_inflates_as_far_as_it_goes(coding: str) -> None:
    encoded = gzip.compress(DOCUMENT) if coding == "gzip" else zlib.compress(DOCUMENT)
    inflated = decode_content(encoded[:40], coding)
    assert inflated is not None
    assert len(inflated) > 20
    assert DOCUMENT.startswith(inflated)


@pytest.mark.parametrize(
    ("body", "coding"),
    [
        pytest.param(DOCUMENT, "br", id="brotli is not in the standard library"),
        pytest.param(DOCUMENT, "zstd", id="nor is zstd"),
        pytest.param(DOCUMENT, "gzip", id="a body that is not what the header claims"),
    ],
)
def test_a_coding_that_cannot_be_undone_gives_none(body: bytes, coding: str) -> None:
    assert decode_content(body, coding) is None


def test_a_decompression_bomb_inflates_to_the_limit_only() -> None:
    bomb = gzip.compress(b"0" * 10_000_000)
    assert len(bomb) < 20_000
    assert decode_content(bomb, "gzip") == b"0" * MAX_DECODED


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("application/json", ("application/json", None)),
        ("Application/JSON; Charset=UTF-8", ("application/json", "utf-8")),
        ('text/xml; charset="ISO-8859-1"; boundary=x', ("text/xml", "iso-8859-1")),
        ("text/plain;charset=", ("text/plain", None)),
        (None, ("", None)),
    ],
)
def test_the_media_type_and_charset_are_read_from_content_type(
    header: str | None, parsed: tuple[str, str | None]
) -> None:
    assert media_type_of(header) == parsed


@pytest.mark.parametrize(
    ("media_type", "data", "kind"),
    [
        ("application/json", b"anything", MediaKind.JSON),
        ("application/problem+json", b"{}", MediaKind.JSON),
        ("application/x-amz-json-1.1", b"{}", MediaKind.JSON),
        ("application/soap+xml", b"<a/>", MediaKind.XML),
        ("text/html", b"{}", MediaKind.HTML),
        ("image/png", b"\x89PNG", MediaKind.OTHER),
        ("text/csv", b"a,b", MediaKind.TEXT),
        ("text/plain", b' \n{"errcode":1}', MediaKind.JSON),
        ("text/plain", b"ERROR", MediaKind.TEXT),
        ("", b"[1,2]", MediaKind.JSON),
        ("", b"<?xml version='1.0'?><a/>", MediaKind.XML),
        ("", b"<!DOCTYPE html><html></html>", MediaKind.HTML),
        ("", b"<HTML><BODY>x</BODY></HTML>", MediaKind.HTML),
        ("", "{}".encode("utf-16"), MediaKind.JSON),
        ("", '{"a":1}'.encode("utf-16-be"), MediaKind.JSON),
        ("application/octet-stream", b"\x00\x01\x02\x03error", MediaKind.OTHER),
        ("", b"plain words", MediaKind.TEXT),
    ],
)
def test_the_media_kind_comes_from_the_type_or_the_first_bytes(
    media_type: str, data: bytes, kind: MediaKind
) -> None:
    assert media_kind(media_type, data) is kind


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        pytest.param("héllo".encode(), None, "héllo", id="UTF-8 by default"),
        pytest.param("héllo".encode("latin-1"), "iso-8859-1", "héllo", id="a declared latin-1"),
        pytest.param("余额".encode("gbk"), "gbk", "余额", id="a declared GBK"),
        pytest.param('{"a":1}'.encode("utf-16"), None, '{"a":1}', id="UTF-16 with its BOM"),
        pytest.param('{"a":1}'.encode("utf-16-be"), None, '{"a":1}', id="UTF-16 without a BOM"),
        pytest.param("\ufeffhi".encode(), "latin-1", "hi", id="a UTF-8 BOM beats the header"),
        pytest.param(b"abc", "no-such-charset", "abc", id="an unknown charset falls back"),
        pytest.param("é".encode()[:1], None, "\ufffd", id="a cut multi-byte character"),
    ],
)
def test_text_is_decoded_without_ever_raising(data: bytes, charset: str | None, text: str) -> None:
    assert text_of(data, charset) == text


def test_the_codec_of_a_utf16_body_is_not_ascii_compatible() -> None:
    assert codec_of("{}".encode("utf-16-le"), None) == "utf-16-le"


def _prefix_cases() -> list[Any]:
    cases = yaml.safe_load((DATA / "json_prefix.yaml").read_text(encoding="utf-8"))
    return [pytest.param(c["text"], c["value"], id=c["name"]) for c in cases]


@pytest.mark.parametrize(("text", "value"), _prefix_cases())
def test_json_is_parsed_as_far_as_it_goes(text: str, value: object) -> None:
    assert parse_json_prefix(text) == value


def test_nesting_deeper_than_the_interpreter_allows_is_not_json_rather_than_a_crash() -> None:
    assert parse_json_prefix("[" * 100_000) is None
    assert parse_json_prefix("[" * 50 + "]" * 50) is not None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=6), _JSON, max_size=5), st.data())
def test_every_cut_of_a_document_parses_to_a_part_of_it(
    document: dict[str, object], data: st.DataObject
) -> None:
    text = json.dumps(document, ensure_ascii=False)
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    parsed = parse_json_prefix(text[:cut])
    if cut == len(text):
        assert parsed == document
    elif cut > 0:
        assert isinstance(parsed, dict)
        for key, value in parsed.items():
            assert key == "…" or (key in document and _is_part_of(value, document[key]))


def _is_part_of(part: object, whole: object) -> bool:
    if isinstance(part, dict) and isinstance(whole, dict):
        return all(k == "…" or (k in whole and _is_part_of(v, whole[k])) for k, v in part.items())
    if isinstance(part, list) and isinstance(whole, list):
        return len(part) <= len(whole) + 1 and all(
            p is None or _is_part_of(p, w) for p, w in zip(part, whole, strict=False)
        )
    return part == whole


@given(st.binary(max_size=300), st.sampled_from(["gzip", "deflate", "br", None, "gzip, x"]))
def test_random_bytes_never_make_the_body_functions_raise(data: bytes, coding: str | None) -> None:
    decoded = decode_content(data, coding)
    for body in (data, decoded or b""):
        media_kind("", body)
        text = text_of(body, None)
        parse_json_prefix(text)
        parse_json_prefix(body.decode("latin-1"))


@given(st.text(alphabet='{}[]",:\\ ab1tnul-.e', max_size=60))
def test_json_like_garbage_never_makes_the_parser_raise(text: str) -> None:
    parse_json_prefix(text)


# --- the scan of a cut document: probe/_json_prefix.c against scan_in_python -------------------

_JSON_LIKE = st.text(alphabet='{}[]",:\\ ab1tnul-.e\n\u00e9\u4e2d\U0001f600', max_size=80)


@st.composite
def _cuts_of_documents(draw: st.DrawFn) -> str:
    document = draw(st.dictionaries(st.text(max_size=6), _JSON, max_size=5))
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    return text[: draw(st.integers(min_value=0, max_value=len(text)))]


def _parse_by_every_attempt(text: str) -> object | None:
    """What parse_json_prefix answered when it tried every way in turn: the document whole, then
    its first value, then closed where the scan says. Skipping the attempts that cannot succeed
    must not change an answer."""
    start = len(text) - len(text.lstrip(" \t\r\n\ufeff"))
    if start == len(text) or text[start] not in "{[":
        return None
    body = text[start:]
    for attempt in (json.loads, lambda t: json.JSONDecoder().raw_decode(t)[0]):
        try:
            whole: object = attempt(body)
        except (ValueError, RecursionError):
            continue
        return whole
    cut = scan_in_python(body)
    return None if cut is None else _repaired(body, cut)


@given(st.one_of(_JSON_LIKE, _cuts_of_documents()))
@example('{"a": "b\\\n", "c": 1}')  # a backslash before a newline ends no string
@example('[{"a": 1}, {"b": [2, 3')
@example("{}]")
def test_the_scan_in_c_finds_what_the_reference_finds(text: str) -> None:
    scan = built_extension("probe._json_prefix").scan
    expected: JsonCut | None = scan_in_python(text)
    assert scan(text) == expected


@given(st.one_of(_JSON_LIKE, _cuts_of_documents()))
@example('{"a": [1, 2], "b": tru')
@example('{"a": 1} {"b": 2}')  # a first value with more after it
@example('{"a": 1, "b"')
def test_a_document_parses_to_what_trying_every_way_in_turn_gives(text: str) -> None:
    assert parse_json_prefix(text) == _parse_by_every_attempt(text)
