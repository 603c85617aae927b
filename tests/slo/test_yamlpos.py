"""YAML loading that remembers where each value was written."""

from __future__ import annotations

import pytest

from slo.errors import InvalidSpec, Position
from slo.yamlpos import format_path, load_text

TEXT = """\
defaults: &defaults
  period: 30d
services:
  - name: checkout
    <<: *defaults
    slos: [a, b]
---
second: true
"""


def test_every_key_and_item_is_found_at_its_line_and_column() -> None:
    first, _ = load_text(TEXT, "f.yaml")
    assert first.position(("services", 0, "name")) == Position("f.yaml", 4, 5)
    assert first.position(("services", 0, "slos", 1)) == Position("f.yaml", 6, 15)
    assert first.position(("services",)) == Position("f.yaml", 3, 1)


def test_a_missing_field_is_placed_at_its_nearest_parent() -> None:
    first, _ = load_text(TEXT, "f.yaml")
    assert first.position(("services", 0, "target")) == Position("f.yaml", 4, 5)


def test_merge_keys_and_several_documents_load_like_safe_load() -> None:
    first, second = load_text(TEXT, "f.yaml")
    assert first.data["services"][0] == {"name": "checkout", "period": "30d", "slos": ["a", "b"]}
    assert (second.index, second.data) == (1, {"second": True})


def test_an_empty_trailing_document_is_not_a_document() -> None:
    assert len(load_text("a: 1\n---\n", "f.yaml")) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\nb: 2\na: 3\n", "f.yaml:3:1: a: key given twice in one mapping"),
        ("a: [1\n", "f.yaml:2:1: (syntax): invalid YAML"),
        ("a:\n  - b: 1\n    b: 2\n", "f.yaml:3:5: a[0].b: key given twice in one mapping"),
    ],
    ids=["a repeated key", "a syntax error", "a repeated key deep inside"],
)
def test_broken_yaml_is_reported_where_it_breaks(text: str, expected: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        load_text(text, "f.yaml")
    assert str(caught.value.problems[0]).startswith(expected)


@pytest.mark.parametrize(
    ("path", "text"),
    [((), "(document)"), (("slos", 1, "target"), "slos[1].target"), ((0, "spec"), "[0].spec")],
)
def test_paths_are_printed_as_users_write_them(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text
