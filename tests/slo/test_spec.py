"""SLO files: what loads, what is refused, and where the problems are reported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from slo.errors import InvalidSpec
from slo.model import EndpointSli, QuerySli, Severity, SliKind
from slo.spec import DEFAULT_MIN_EVENTS, LoadOptions, load_catalog, load_paths

HERE = Path(__file__).parent
INVALID = sorted((HERE / "data" / "invalid").glob("*.yaml"))
EXAMPLES = HERE.parent.parent / "deploy" / "examples" / "slos"
SLOTH_VALIDATE = Path("sloth/test/integration/prometheus/testdata/validate")


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InvalidSpec) as caught:
        load_paths([path])
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]


def conformance_files(conformance: Path, *patterns: str) -> list[Path]:
    return sorted(p for pattern in patterns for p in conformance.glob(pattern))


# --- conformance: the good ones load, the bad ones are refused ------------------------------

GOOD = (
    f"{SLOTH_VALIDATE}/good/*.yaml",
    "sloth/test/integration/prometheus/testdata/in-base*.yaml",
    "sloth/test/integration/prometheus/testdata/in-multifile*.yaml",
    "sloth/test/integration/prometheus/testdata/in-openslo.yaml",
    "openslo/go-sdk/**/*.yaml",
    "openslo/spec/examples/**/*.yaml",
)
BAD = (f"{SLOTH_VALIDATE}/bad/*.yaml", "openslo/oslo/test/inputs/validate/*.yaml")


def test_every_good_conformance_file_loads(conformance: Path) -> None:
    files = conformance_files(conformance, *GOOD)
    assert len(files) >= 20
    failures = {}
    for path in files:
        try:
            load_paths([path])
        except InvalidSpec as exc:
            failures[str(path.relative_to(conformance))] = [str(p) for p in exc.problems]
    assert failures == {}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bad-aa.yaml", "28:5: slos[1].objective: a Sloth objective is a percentage"),
        ("bad-k8s.yaml", "7:3: spec.service: must not be empty"),
        ("bad-multi-k8s.yaml", "22:9: spec.slos[0].alerting.name: an alert name is required"),
        ("bad-multi.yaml", "77:5: slos[1].sli: give exactly one of events, raw or plugin"),
        ("bad-openslo.yaml", "22:7: spec.timeWindows[0]: openslo/v1alpha SLOs are imported"),
        ("invalid-apiversion.yaml", "1:1: apiVersion: unsupported version 'foo'"),
        ("unknown-field.yaml", "6:3: spec.markdown: unknown field"),
        ("v1.yaml", "59:5: [2].metadata.name: 'example service' is not a valid OpenSLO name"),
        ("v1alpha.yaml", "4:5: [0].metadata.name: 'my-rad service' is not a valid OpenSLO name"),
    ],
)
def test_each_bad_conformance_file_is_refused_for_its_real_fault(
    conformance: Path, name: str, expected: str
) -> None:
    (path,) = [p for p in conformance_files(conformance, *BAD) if p.name == name]
    assert any(p.startswith(expected) for p in problems_of(path)), problems_of(path)


def test_no_bad_conformance_file_is_left_untested(conformance: Path) -> None:
    names = {p.name for p in conformance_files(conformance, *BAD)}
    tested = {
        "bad-aa.yaml",
        "bad-k8s.yaml",
        "bad-multi-k8s.yaml",
        "bad-multi.yaml",
        "bad-openslo.yaml",
        "invalid-apiversion.yaml",
        "unknown-field.yaml",
        "v1.yaml",
        "v1alpha.yaml",
        "bad-ab.yaml",
        "bad-ba.yaml",
    }
    assert names <= tested
    for name in ("bad-ab.yaml", "bad-ba.yaml"):
        (path,) = [p for p in conformance_files(conformance, *BAD) if p.name == name]
        assert problems_of(path)


def test_the_same_slo_id_in_two_files_is_refused_like_sloth_does(conformance: Path) -> None:
    good = sorted((conformance / SLOTH_VALIDATE / "good").glob("good-a*.yaml"))
    with pytest.raises(InvalidSpec) as caught:
        load_paths(good)
    assert "SLO id 'svc01-slo1' is already defined at" in str(caught.value)


# --- our own files --------------------------------------------------------------------------


def expectations(path: Path) -> list[str]:
    return re.findall(r"^# expect: (.*)$", path.read_text(), flags=re.MULTILINE)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_an_invalid_file_reports_every_problem_at_its_line_and_column(path: Path) -> None:
    found = problems_of(path)
    wanted = expectations(path)
    assert wanted, "each invalid fixture says what it expects"
    missing = [w for w in wanted if not any(p.startswith(w) for p in found)]
    assert missing == [], found
    assert len(found) == len(wanted), found


def test_the_example_files_load() -> None:
    loaded = load_paths([EXAMPLES])
    assert loaded.files >= 2
    assert {s.id for s in loaded.slos} >= {"checkout-place-order", "search-query"}


def test_an_example_slo_becomes_the_model_it_says() -> None:
    slos = {s.id: s for s in load_paths([EXAMPLES]).slos}
    order = slos["checkout-place-order"]
    assert order.objective == 0.999
    assert order.period_s == 28 * 86400
    assert isinstance(order.sli, EndpointSli)
    assert order.sli.kind is SliKind.HEALTH
    assert order.sli.latency_threshold_s == 0.5
    assert (order.sli.selector.route, order.sli.selector.method) == ("/orders", "POST")
    assert order.alerting.min_events == DEFAULT_MIN_EVENTS
    page = order.alerting.alert_for(Severity.PAGE)
    assert page is not None and page.receivers == ("payments-pager",)
    assert dict(order.labels) == {"team": "payments"}
    correctness = slos["checkout-payments-correct"]
    assert correctness.alerting.alert_for(Severity.PAGE) is None
    assert len(correctness.alerting.windows_for(Severity.PAGE)) == 2  # still measured


def test_custom_windows_take_a_budget_share_or_a_burn_rate() -> None:
    search = {s.id: s for s in load_paths([EXAMPLES]).slos}["search-query"]
    factors = [(w.severity, w.long_window_s, round(w.factor, 6)) for w in search.alerting.windows]
    assert factors == [
        (Severity.PAGE, 3600, 13.44),
        (Severity.PAGE, 21600, 7.0),
        (Severity.TICKET, 259200, 0.98),
    ]


# --- identity and fingerprint ---------------------------------------------------------------


def test_an_slo_is_a_hashable_value_whose_source_does_not_matter(tmp_path: Path) -> None:
    text = (EXAMPLES / "checkout.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text("# moved down a line\n" + text)
    (a,) = [s for s in load_paths([tmp_path / "a.yaml"]).slos if s.name == "place-order"]
    (b,) = [s for s in load_paths([tmp_path / "b.yaml"]).slos if s.name == "place-order"]
    assert a.source != b.source
    assert a == b and hash(a) == hash(b) and a.fingerprint == b.fingerprint


@pytest.mark.parametrize(
    ("edit", "changes_fingerprint"),
    [
        (("target: 99.9%", "target: 99.5%"), True),
        (("latencyThreshold: 500ms", "latencyThreshold: 300ms"), True),
        (("timeWindow: 28d", "timeWindow: 30d"), True),
        (("route: /orders", "route: /order"), True),
        (("runbook_url: https://runbooks", "runbook_url: https://wiki"), False),
        (("team: payments", "team: billing"), False),
        (("Orders are placed", "Orders get placed"), False),
    ],
    ids=str,
)
def test_the_fingerprint_changes_exactly_when_the_decision_would(
    tmp_path: Path, edit: tuple[str, str], changes_fingerprint: bool
) -> None:
    text = (EXAMPLES / "checkout.yaml").read_text()
    assert edit[0] in text
    (tmp_path / "before.yaml").write_text(text)
    (tmp_path / "after.yaml").write_text(text.replace(edit[0], edit[1], 1))
    (before,) = [s for s in load_paths([tmp_path / "before.yaml"]).slos if s.name == "place-order"]
    (after,) = [s for s in load_paths([tmp_path / "after.yaml"]).slos if s.name == "place-order"]
    assert before.id == after.id
    assert (before.fingerprint != after.fingerprint) is changes_fingerprint


# --- imports --------------------------------------------------------------------------------


def test_a_sloth_slo_keeps_its_queries_alerts_and_labels(conformance: Path) -> None:
    path = conformance / "sloth/test/integration/prometheus/testdata/in-base.yaml"
    first, second = load_paths([path]).slos
    assert first.id == "svc01-slo1" and first.objective == 0.999
    assert isinstance(first.sli, QuerySli) and first.sli.error_query is not None
    assert "{{.window}}" in first.sli.error_query
    page = first.alerting.alert_for(Severity.PAGE)
    assert page is not None and page.name == "myServiceAlert"
    assert dict(page.labels) == {"alert01k1": "alert01v1", "alert03k1": "alert03v1"}
    assert dict(first.labels) == {"global01k1": "global01v1", "global02k1": "global02v1"}
    assert first.alerting.min_events == 0
    assert second.alerting.alerts == ()


def test_an_openslo_slo_resolves_references_across_files(tmp_path: Path) -> None:
    (tmp_path / "sli.yaml").write_text((HERE / "data" / "openslo" / "sli.yaml").read_text())
    (tmp_path / "slo.yaml").write_text((HERE / "data" / "openslo" / "slo.yaml").read_text())
    (slo,) = load_paths([tmp_path]).slos
    assert isinstance(slo.sli, QuerySli)
    assert slo.sli.good_query == 'sum(rate(http_requests_total{code!~"5.."}[{{.window}}]))'
    assert slo.period_s == 28 * 86400
    page = slo.alerting.alert_for(Severity.PAGE)
    assert page is not None
    assert (page.name, page.for_s, page.receivers) == ("OnCall", 120, ("pager",))
    (window,) = slo.alerting.windows
    assert (window.long_window_s, window.short_window_s) == (3600, 300)
    assert window.factor == pytest.approx(14.4)


def test_an_openslo_slo_without_its_sli_says_which_reference_is_missing(tmp_path: Path) -> None:
    (tmp_path / "slo.yaml").write_text((HERE / "data" / "openslo" / "slo.yaml").read_text())
    with pytest.raises(InvalidSpec) as caught:
        load_paths([tmp_path])
    assert [p.path for p in caught.value.problems] == ["[0].spec.indicatorRef"]
    assert "no SLI named 'checkout-good-requests'" in str(caught.value)


def test_a_sloth_window_catalog_replaces_the_default_for_its_period(conformance: Path) -> None:
    catalog = load_catalog(conformance / "sloth/test/integration/prometheus/windows/7d.yaml")
    options = LoadOptions(default_period_s=7 * 86400, catalogs=(catalog,))
    path = conformance / "sloth/test/integration/prometheus/testdata/in-base.yaml"
    first = load_paths([path], options).slos[0]
    assert [round(w.factor, 4) for w in first.alerting.windows] == [13.44, 3.5, 1.4, 0.98]
