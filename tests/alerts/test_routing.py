"""Routing: matchers, the route configuration, and which receivers an alert reaches."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from alerts.errors import MatcherSyntaxError, RoutingConfigError
from alerts.model import labels_of
from alerts.routing import (
    Matcher,
    MatchOp,
    RootRouteConfig,
    Route,
    build_route_tree,
    group_key,
    group_labels,
    match_routes,
    parse_duration,
    parse_matcher,
    parse_matchers,
)

DATA = Path(__file__).parent / "data"


def load(name: str) -> Any:
    return yaml.safe_load((DATA / name).read_text())


def cases(name: str, section: str | None = None) -> list[Any]:
    data = load(name)
    rows = data[section] if section else data
    return [pytest.param(row, id=row["id"]) for row in rows]


def tree_from(config: dict[str, Any], receivers: list[str]) -> Route:
    return build_route_tree(RootRouteConfig.model_validate(config), receivers)


# --- matchers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("matchers.yml", "valid"))
def test_valid_matcher_text_means_these_matchers(case: dict[str, Any]) -> None:
    expected = tuple(Matcher(name, MatchOp(op), value) for name, op, value in case["matchers"])
    assert parse_matchers(case["text"]) == expected


@pytest.mark.parametrize("case", cases("matchers.yml", "invalid"))
def test_invalid_matcher_text_is_rejected_with_a_precise_message(case: dict[str, Any]) -> None:
    with pytest.raises(MatcherSyntaxError) as caught:
        parse_matchers(case["text"])
    assert case["error"] in str(caught.value)
    assert repr(case["text"]) in str(caught.value)


@pytest.mark.parametrize(
    ("matcher", "labels", "matches"),
    [
        pytest.param('severity="page"', {"severity": "page"}, True, id="equal matches its value"),
        pytest.param('severity="page"', {"severity": "ticket"}, False, id="equal rejects others"),
        pytest.param('team=""', {}, True, id="an empty value matches a missing label"),
        pytest.param('team!="pay"', {}, True, id="not-equal matches a missing label"),
        pytest.param('team=~"pay.*"', {"team": "payments"}, True, id="regex matches a prefix"),
        pytest.param('team=~"pay.*"', {"team": "repay"}, False, id="regex is anchored at start"),
        pytest.param('team=~"pay"', {"team": "payments"}, False, id="regex is anchored at end"),
        pytest.param('team=~"a|b"', {"team": "b"}, True, id="alternation covers the whole value"),
        pytest.param('team!~"pay.*"', {"team": "search"}, True, id="negative regex"),
        pytest.param('team!~"pay.*"', {"team": "payments"}, False, id="negative regex rejects"),
        pytest.param('team=~".*"', {}, True, id="match-all regex matches a missing label"),
        pytest.param('team=~".+"', {}, False, id="a regex needing a character needs the label"),
    ],
)
def test_a_matcher_decides_on_the_label_value(
    matcher: str, labels: dict[str, str], matches: bool
) -> None:
    assert parse_matcher(matcher).matches_labels(labels) is matches


def test_parse_matcher_wants_exactly_one() -> None:
    with pytest.raises(MatcherSyntaxError, match="expected one matcher, found 2"):
        parse_matcher("a=b,c=d")


def test_a_matcher_from_the_alertmanager_api_fields_has_the_right_operator() -> None:
    assert Matcher.from_fields("a", "x.*", is_regex=True, is_equal=False).op is MatchOp.NOT_REGEX
    assert Matcher.from_fields("a", "x", is_regex=False).op is MatchOp.EQUAL
    matcher = parse_matcher('a!="x"')
    assert (matcher.is_regex, matcher.is_equal) == (False, False)


@given(
    name=st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True) | st.text(min_size=1),
    op=st.sampled_from([MatchOp.EQUAL, MatchOp.NOT_EQUAL]),
    value=st.text(),
)
def test_a_printed_matcher_parses_back_to_itself(name: str, op: MatchOp, value: str) -> None:
    matcher = Matcher(name, op, value)
    assert parse_matchers(str(matcher)) == (matcher,)


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("4h", timedelta(hours=4)),
        ("1h30m", timedelta(minutes=90)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("1y", timedelta(days=365)),
        ("250ms", timedelta(milliseconds=250)),
        ("0", timedelta(0)),
    ],
)
def test_prometheus_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "1.5h", "5m1h", "-5m", "5 m", "h"])
def test_text_that_is_not_a_prometheus_duration_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


# --- the configuration ------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("routing/bad-routes.yml"))
def test_a_bad_route_configuration_is_rejected_where_it_is_wrong(case: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        RootRouteConfig.model_validate(case["route"])
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    assert ".".join(str(part) for part in errors[0]["loc"]) == case["loc"]
    assert case["error"] in errors[0]["msg"]


def test_receivers_the_tree_names_must_be_defined() -> None:
    config = RootRouteConfig.model_validate(
        {
            "receiver": "default",
            "routes": [{"receiver": "team-a"}, {"routes": [{"receiver": "nobody"}]}],
        }
    )
    with pytest.raises(RoutingConfigError) as caught:
        build_route_tree(config, ["default", "team-a"])
    assert caught.value.problems == [
        "route.routes[1].routes[0].receiver: 'nobody' is not a defined receiver "
        "(defined: default, team-a)"
    ]


def test_defaults_apply_when_the_file_sets_no_timers() -> None:
    """Alertmanager's 5m and 4h; no group_wait, because a page cannot wait (routing.py)."""
    tree = tree_from({"receiver": "default"}, ["default"])
    assert (tree.group_wait, tree.group_interval, tree.repeat_interval) == (
        timedelta(0),
        timedelta(minutes=5),
        timedelta(hours=4),
    )
    assert (tree.group_by, tree.group_by_all) == ((), False)


def test_siblings_with_the_same_matchers_get_distinct_keys() -> None:
    tree = tree_from(
        {
            "receiver": "a",
            "routes": [
                {"matchers": ['x="1"'], "receiver": "a", "continue": True},
                {"matchers": ['x="1"'], "receiver": "b"},
            ],
        },
        ["a", "b"],
    )
    assert [r.key for r in tree.routes] == ['{}/{x="1"}', '{}/{x="1"}#1']


# --- routing decisions ------------------------------------------------------------------------


def check_routes(tree: Route, labels: dict[str, str], expected: list[dict[str, Any]]) -> None:
    routes = match_routes(tree, labels_of(labels))
    assert [r.receiver for r in routes] == [e["receiver"] for e in expected]
    for route, want in zip(routes, expected, strict=True):
        if "key" in want:
            assert route.key == want["key"]
        if "group_by" in want:
            if want["group_by"] == ["..."]:
                assert route.group_by_all
            else:
                assert (list(route.group_by), route.group_by_all) == (want["group_by"], False)
        for timer in ("group_wait", "group_interval", "repeat_interval"):
            if timer in want:
                assert getattr(route, timer) == parse_duration(want[timer]), timer


TREE = load("routing/tree.yml")


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in TREE["cases"]])
def test_the_routing_tree_sends_an_alert_to_these_receivers(case: dict[str, Any]) -> None:
    tree = tree_from(TREE["route"], TREE["receivers"])
    check_routes(tree, case["labels"], case["routes"])


EXAMPLES = [
    pytest.param(example["config"], case, id=case["id"])
    for example in load("routing/alertmanager-examples.yml")
    for case in example["cases"]
]


@pytest.mark.parametrize(("config", "case"), EXAMPLES)
def test_alertmanager_example_configurations_route_like_alertmanager(
    conformance: Path, config: str, case: dict[str, Any]
) -> None:
    document = yaml.safe_load((conformance / config).read_text())
    receivers = [r["name"] for r in document["receivers"]]
    tree = tree_from(document["route"], receivers)
    check_routes(tree, case["labels"], case["routes"])


def test_group_labels_keep_only_the_group_by_labels_the_alert_has() -> None:
    tree = tree_from({"receiver": "a", "group_by": ["slo", "cluster"]}, ["a"])
    labels = labels_of(slo="checkout", severity="page", service="shop")
    assert group_labels(tree, labels) == (("slo", "checkout"),)
    assert group_key(tree, group_labels(tree, labels)) == '{}:{slo="checkout"}'


def test_grouping_by_all_labels_keeps_every_label() -> None:
    tree = tree_from({"receiver": "a", "group_by": ["..."]}, ["a"])
    labels = labels_of(slo="checkout", severity="page")
    assert group_labels(tree, labels) == labels


def test_without_group_by_every_alert_of_a_route_shares_one_group() -> None:
    tree = tree_from({"receiver": "a"}, ["a"])
    first = group_key(tree, group_labels(tree, labels_of(slo="a")))
    second = group_key(tree, group_labels(tree, labels_of(slo="b")))
    assert first == second == "{}:{}"
