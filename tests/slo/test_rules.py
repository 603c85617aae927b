"""Prometheus rules: valid for promtool, firing on time, and numerically Sloth's for Sloth."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from slo.errors import RulesUnsupported
from slo.model import EndpointSli, Selector, SliKind
from slo.rules import render_rules
from slo.spec import LoadOptions, load_catalog, load_paths
from slo.windows import DAY
from tests.ci import require_binary

HERE = Path(__file__).parent
PROMTOOL_DATA = HERE / "data" / "promtool"
EXAMPLES = HERE.parent.parent / "deploy" / "examples" / "slos"
SLOTH_TESTDATA = Path("sloth/test/integration/prometheus/testdata")


def promtool() -> str:
    return require_binary("promtool", "Debian's prometheus; scripts/setup.sh --dev installs it")


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


# --- promtool --------------------------------------------------------------------------------


def test_the_rules_of_the_examples_and_of_sloth_specs_pass_promtool_check(
    tmp_path: Path, conformance: Path
) -> None:
    tool = promtool()
    sources = [
        [EXAMPLES],
        [PROMTOOL_DATA / "slos.yaml"],
        [conformance / SLOTH_TESTDATA / "in-base.yaml"],
        [conformance / SLOTH_TESTDATA / "in-multifile-k8s.yaml"],
        [conformance / SLOTH_TESTDATA / "in-openslo.yaml"],
    ]
    for index, paths in enumerate(sources):
        out = tmp_path / f"rules-{index}.yaml"
        out.write_text(render_rules(load_paths(paths).slos))
        result = run([tool, "check", "rules", str(out)], tmp_path)
        assert result.returncode == 0, (paths, result.stdout, result.stderr)


def test_a_total_outage_pages_on_time_and_a_quiet_endpoint_does_not(tmp_path: Path) -> None:
    tool = promtool()
    rules = render_rules(load_paths([PROMTOOL_DATA / "slos.yaml"]).slos)
    (tmp_path / "rules.yaml").write_text(rules)
    shutil.copy(PROMTOOL_DATA / "outage.test.yaml", tmp_path)
    result = run([tool, "test", "rules", "outage.test.yaml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Sloth conformance: same windows, same thresholds ----------------------------------------

THRESHOLD = re.compile(r"slo:sli_error:ratio_rate(\w+)\{[^}]*\} > \(([0-9.e+-]+) \* ([0-9.e+-]+)\)")


def rule_groups(text: str) -> list[dict[str, Any]]:
    # Sloth's expected files are Go templates for its version string only.
    groups: list[dict[str, Any]] = []
    for document in yaml.safe_load_all(text.replace("{{ .version }}", "test")):
        if document:
            groups.extend((document.get("spec") or document)["groups"])
    return groups


def summary(text: str, id_label: str, severity_label: str) -> dict[str, Any]:
    """Per SLO id: recorded windows, objective, and per severity the (window, threshold) list."""
    result: dict[str, Any] = {}
    for group in rule_groups(text):
        for rule in group["rules"]:
            labels = rule.get("labels", {})
            if "record" in rule:
                slo = result.setdefault(labels[id_label], {"windows": set(), "alerts": {}})
                if rule["record"].startswith("slo:sli_error:ratio_rate"):
                    slo["windows"].add(rule["record"].removeprefix("slo:sli_error:ratio_rate"))
                if rule["record"] == "slo:objective:ratio":
                    slo["objective"] = float(rule["expr"].strip()[len("vector(") : -1])
            else:
                (slo_id,) = set(re.findall(rf'{id_label}="([^"]+)"', rule["expr"]))
                terms = [(w, float(f) * float(b)) for w, f, b in THRESHOLD.findall(rule["expr"])]
                slo = result.setdefault(slo_id, {"windows": set(), "alerts": {}})
                slo["alerts"][labels[severity_label]] = terms
    return result


def assert_same_numbers(ours: dict[str, Any], sloths: dict[str, Any]) -> None:
    assert ours.keys() == sloths.keys()
    for slo_id, expected in sloths.items():
        got = ours[slo_id]
        assert got["windows"] == expected["windows"], slo_id
        assert got["objective"] == pytest.approx(expected["objective"]), slo_id
        assert got["alerts"].keys() == expected["alerts"].keys(), slo_id
        for severity, terms in expected["alerts"].items():
            assert [w for w, _ in got["alerts"][severity]] == [w for w, _ in terms], slo_id
            assert [t for _, t in got["alerts"][severity]] == pytest.approx(
                [t for _, t in terms], rel=1e-9
            ), (slo_id, severity)


SLOTH_CASES = [
    ("in-base.yaml", "out-base.yaml.tpl", 30, None),
    ("in-base.yaml", "out-base-28d.yaml.tpl", 28, None),
    ("in-base.yaml", "out-base-custom-windows-7d.yaml.tpl", 7, "../windows/7d.yaml"),
    ("in-base.yaml", "out-base-no-recordings.yaml.tpl", 30, None),
    ("in-multifile.yaml", "out-multifile.yaml.tpl", 30, None),
    ("in-base-k8s.yaml", "out-base-k8s.yaml.tpl", 30, None),
    ("in-multifile-k8s.yaml", "out-multifile-k8s.yaml.tpl", 30, None),
    ("in-openslo.yaml", "out-openslo.yaml.tpl", 30, None),
]


@pytest.mark.parametrize(
    ("source", "expected", "days", "windows"),
    SLOTH_CASES,
    ids=[case[1].removesuffix(".yaml.tpl") for case in SLOTH_CASES],
)
def test_sloth_specs_get_sloths_windows_and_thresholds(
    conformance: Path, source: str, expected: str, days: int, windows: str | None
) -> None:
    base = conformance / SLOTH_TESTDATA
    catalogs = (load_catalog(base / windows),) if windows else ()
    slos = load_paths([base / source], LoadOptions(days * DAY, catalogs)).slos
    ours = summary(render_rules(slos), "slo_id", "slo_severity")
    sloths = summary((base / expected).read_text(), "sloth_id", "sloth_severity")
    if "no-recordings" in expected:  # that file has only alerts: compare those
        for slo_id in ours:
            sloths[slo_id] = {**ours[slo_id], "alerts": sloths.get(slo_id, {}).get("alerts", {})}
    assert_same_numbers(ours, sloths)


def sloth_examples(conformance: Path) -> list[Path]:
    examples = conformance / "sloth" / "examples"
    loadable = []
    for path in sorted(examples.glob("*.y*ml")):
        if "plugin" in path.name or path.name.startswith(("victoria", "contrib")):
            continue  # Go plugins and VictoriaMetrics-only alert names: not importable
        loadable.append(path)
    return loadable


def test_sloths_own_examples_get_sloths_windows_and_thresholds(conformance: Path) -> None:
    examples = sloth_examples(conformance)
    assert len(examples) >= 9
    for path in examples:
        generated = conformance / "sloth" / "examples" / "_gen" / path.name
        ours = summary(render_rules(load_paths([path]).slos), "slo_id", "slo_severity")
        sloths = summary(generated.read_text(), "sloth_id", "sloth_severity")
        assert_same_numbers(ours, sloths)


# --- what rules say and refuse --------------------------------------------------------------


def test_route_selectors_are_escaped_and_thresholds_match_either_bucket_spelling(
    tmp_path: Path,
) -> None:
    (tmp_path / "slo.yaml").write_text(
        (EXAMPLES / "custom-windows.yaml")
        .read_text()
        .replace("route: /search", 'routeRegex: /search/(v1|v2)/"\\\\w+')
    )
    text = render_rules(load_paths([tmp_path / "slo.yaml"]).slos)
    assert r'route=~"/search/(v1|v2)/\"\\\\w+"' in text
    assert r'le=~"1|1\\.0"' in text  # Go writes le="1", Python's client le="1.0"


def test_an_slo_read_from_another_source_cannot_become_rules(conformance: Path) -> None:
    slos = load_paths([conformance / "openslo/spec/examples/budgeting-method"]).slos
    with pytest.raises(RulesUnsupported, match="reads from 'any', not Prometheus"):
        render_rules(slos)


def test_every_sli_kind_reads_the_metric_the_contract_names() -> None:
    from slo.rules import _error_ratio  # the expression itself is the contract

    selector = Selector(service="svc", route="/a", method="GET")
    slos = load_paths([PROMTOOL_DATA / "slos.yaml"]).slos
    base = slos[0]
    expected = {
        SliKind.AVAILABILITY: ('api_requests_total{service="svc", method="GET", route="/a", '
                               'status_class=~"5xx|none"}'),
        SliKind.CORRECTNESS: 'api_business_errors_total{service="svc", method="GET", route="/a"}',
        SliKind.LATENCY: 'api_http_duration_seconds_bucket{service="svc", method="GET", '
                         'route="/a", le="0.3"}',
        SliKind.HEALTH: 'api_clean_duration_seconds_bucket{service="svc", method="GET", '
                        'route="/a", le="0.3"}',
    }  # fmt: skip
    for kind, term in expected.items():
        threshold = None if kind in (SliKind.AVAILABILITY, SliKind.CORRECTNESS) else 0.3
        slo = dataclasses.replace(base, sli=EndpointSli(kind, selector, threshold))
        assert term in _error_ratio(slo, "5m"), kind
