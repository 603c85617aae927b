"""Route templates: user patterns, the default heuristic, the cap, the config and the command."""

from __future__ import annotations

import io
import random
import re
import string
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from probe import routes
from probe.errors import ConfigFieldError
from probe.exchanges import RouteTemplater, path_of
from probe.routes import (
    NOT_A_PATH,
    OVERFLOW,
    Router,
    RouteRules,
    load_route_rules,
)
from slo.cli import main

DATA = Path(__file__).parent / "data" / "routes"


def _tsv_cases() -> list[Any]:
    cases = []
    for line in (DATA / "heuristic.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            path, route, why = line.split("\t")
            cases.append(pytest.param(path, route, id=why))
    return cases


def _yaml_cases(name: str) -> list[Any]:
    return [
        pytest.param(case, id=case["name"]) for case in yaml.safe_load((DATA / name).read_text())
    ]


@pytest.mark.parametrize(("target", "route"), _tsv_cases())
def test_the_heuristic_replaces_identifiers_and_keeps_words(target: str, route: str) -> None:
    assert Router().route("svc", path_of(target)) == route


@pytest.mark.parametrize("case", _yaml_cases("patterns.yaml"))
def test_user_patterns_decide_before_the_heuristic(case: dict[str, Any]) -> None:
    router = Router(load_route_rules(case["routes"]))
    routes = {target: router.route("payments", path_of(target)) for target in case["expect"]}
    assert routes == case["expect"]


@pytest.mark.parametrize("case", _yaml_cases("bad_sections.yaml"))
def test_a_bad_routes_section_is_rejected_with_the_field_path(case: dict[str, Any]) -> None:
    with pytest.raises(ConfigFieldError) as raised:
        load_route_rules(case["routes"])
    assert str(raised.value) == case["error"]


def test_a_missing_section_means_the_defaults() -> None:
    assert load_route_rules(None) == RouteRules()


def test_sibling_words_are_never_merged() -> None:
    router = Router()
    names = ["hello.world", "hello.there", "users", "orders", "oauth2", "v1", "v2", "token"]
    routes = {router.route("svc", f"/api/{name}") for name in names}
    assert len(routes) == len(names)


def test_routes_beyond_the_per_service_cap_overflow_and_are_counted() -> None:
    router = Router(RouteRules(max_routes_per_service=3))
    routes = [router.route("svc", f"/{word}") for word in ("a", "b", "c", "d", "e", "a")]
    assert routes == ["/a", "/b", "/c", OVERFLOW, OVERFLOW, "/a"]
    assert router.overflow_counts() == {"svc": 2}
    assert router.route_counts() == {"svc": 3}


def test_the_cap_is_per_service() -> None:
    router = Router(RouteRules(max_routes_per_service=1))
    assert [router.route(s, "/x") for s in ("a", "b")] == ["/x", "/x"]
    assert router.overflow_counts() == {}


def test_fanout_beyond_the_cap_overflows_without_starving_other_routes() -> None:
    router = Router(RouteRules(max_fanout_per_segment=2))
    seen = [router.route("svc", f"/users/{name}") for name in ("alice", "bob", "carol", "dave")]
    assert seen == ["/users/alice", "/users/bob", OVERFLOW, OVERFLOW]
    assert router.route("svc", "/orders/42") == "/orders/:int"
    assert router.route("svc", "/users/alice") == "/users/alice"


def test_an_overflowed_path_is_counted_every_time_it_is_seen() -> None:
    router = Router(RouteRules(max_routes_per_service=1))
    router.route("svc", "/a")
    for _ in range(3):
        assert router.route("svc", "/b") == OVERFLOW
    assert router.overflow_counts() == {"svc": 3}


def test_paths_deeper_than_the_limit_overflow_unless_a_pattern_takes_them() -> None:
    router = Router(load_route_rules({"max_segments": 3, "patterns": {"*": ["/f/{p*}"]}}))
    assert router.route("svc", "/a/b/c") == "/a/b/c"
    assert router.route("svc", "/a/b/c/d") == OVERFLOW
    assert router.route("svc", "/f/a/b/c/d") == "/f/:p"


def test_a_target_that_is_not_a_path_gets_its_own_route() -> None:
    assert Router().route("svc", "*") == NOT_A_PATH


def test_the_router_is_the_route_templater_the_exchange_builder_takes() -> None:
    templater: RouteTemplater = Router()  # mypy checks the protocol
    assert templater.route("svc", "/users/42") == "/users/:int"


def test_a_million_style_flood_of_random_paths_does_not_grow_memory() -> None:
    rng = random.Random(3)
    alphabet = string.ascii_lowercase

    def flood(router: Router, count: int) -> None:
        for _ in range(count):
            words = ("".join(rng.choices(alphabet, k=rng.randint(3, 9))) for _ in range(4))
            router.route("svc", "/" + "/".join(words))

    router = Router()
    flood(router, 15_000)  # fill every cap and cache once
    tracemalloc.start()
    try:
        flood(router, 30_000)
        # Only what this test and the router hold: server threads of other tests allocate too.
        own = [tracemalloc.Filter(True, __file__), tracemalloc.Filter(True, routes.__file__)]
        snapshot = tracemalloc.take_snapshot().filter_traces(own)
    finally:
        tracemalloc.stop()
    grown = sum(stat.size for stat in snapshot.statistics("filename"))
    assert grown < 1_500_000  # the caches are refilled after a clear, never grown past their cap
    assert router.route_counts()["svc"] <= RouteRules().max_routes_per_service


_REGEX_OPERATORS = re.compile(r"[*+?()\[\]{}|^$\\]")


@given(st.text(max_size=120))
def test_any_target_gets_a_route_that_is_safe_in_a_promql_regex(target: str) -> None:
    route = Router().route("svc", target)
    assert _REGEX_OPERATORS.search(route) is None
    assert re.fullmatch(route, route)


@given(st.lists(st.text(alphabet=string.printable, max_size=20), max_size=6))
def test_the_same_path_always_gets_the_same_route(segments: list[str]) -> None:
    router = Router()
    path = "/" + "/".join(segments)
    assert router.route("svc", path) == router.route("svc", path) == Router().route("svc", path)


# --- the command -----------------------------------------------------------------------------


def test_the_command_prints_path_and_route_for_each_argument(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["routes", "/users/42?x=1", "/api/v1/users"]) == 0
    assert capsys.readouterr().out == "/users/42?x=1\t/users/:int\n/api/v1/users\t/api/v1/users\n"


def test_the_command_reads_paths_from_stdin_and_skips_blank_lines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("/a/1\n\n  /b/cus_NffrFeUfNV2Hib  \n"))
    assert main(["routes"]) == 0
    assert capsys.readouterr().out == "/a/1\t/a/:int\n/b/cus_NffrFeUfNV2Hib\t/b/:id\n"


def test_the_command_applies_the_services_patterns_from_the_config_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "bytewatch.yaml"
    config.write_text("slos: ignored\nroutes:\n  patterns:\n    payments: ['/users/{id}']\n")
    assert main(["routes", "--config", str(config), "--service", "payments", "/users/al"]) == 0
    assert main(["routes", "--config", str(config), "/users/al"]) == 0
    assert capsys.readouterr().out == "/users/al\t/users/:id\n/users/al\t/users/al\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "routes:\n  patterns:\n    payments:\n      - /ok\n      - /bad/*\n",
            "{path}:5:9: routes.patterns.payments[1]: pattern '/bad/*': segment '*' is neither",
            id="a bad pattern is reported with its file line and field path",
        ),
        pytest.param(
            "routes:\n  max_segments: -1\n",
            "{path}:2:3: routes.max_segments: expected a positive integer, got -1",
            id="a bad limit is reported with its line",
        ),
        pytest.param("routes: [\n", "{path}:2:1: (syntax): invalid YAML: ", id="bad YAML"),
        pytest.param(
            "- a\n- b\n",
            "{path}:1:1: (document): expected a mapping of sections",
            id="a list at the top",
        ),
    ],
)
def test_a_bad_config_file_is_one_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "bytewatch.yaml"
    config.write_text(text)
    assert main(["routes", "--config", str(config), "/x"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("bytewatch routes: " + message.format(path=config))
    assert err.count("\n") == 1


def test_a_missing_config_file_is_one_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["routes", "--config", str(tmp_path / "nope.yaml"), "/x"]) == 2
    assert capsys.readouterr().err.startswith(
        f"bytewatch routes: {tmp_path / 'nope.yaml'}:1:1: (file): cannot read"
    )
