"""`bytewatch validate` and `bytewatch rules`, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slo.cli import main

HERE = Path(__file__).parent
EXAMPLES = HERE.parent.parent / "deploy" / "examples" / "slos"
INVALID = HERE / "data" / "invalid" / "every-problem-at-once.yaml"


def test_validate_prints_a_one_line_summary_for_clean_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", str(EXAMPLES / "checkout.yaml")]) == 0
    out = capsys.readouterr().out
    assert out == "bytewatch validate: 1 file ok: 4 SLOs for 1 service\n"


def test_validate_lists_every_problem_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(INVALID), str(EXAMPLES)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 6
    assert err[0].startswith(f"{INVALID}:12:9: services[0].slos[0].target: ")
    assert err[-1] == "bytewatch validate: 5 problems"


def test_rules_writes_a_rule_file(tmp_path: Path) -> None:
    out = tmp_path / "rules.yaml"
    assert main(["rules", str(EXAMPLES), "-o", str(out)]) == 0
    groups = yaml.safe_load(out.read_text())["groups"]
    assert "bytewatch-slo-checkout-place-order" in {g["name"] for g in groups}


def test_rules_uses_the_given_default_period_and_window_catalog(
    tmp_path: Path, conformance: Path
) -> None:
    base = conformance / "sloth/test/integration/prometheus"
    out = tmp_path / "rules.yaml"
    args = ["rules", str(base / "testdata/in-base.yaml"), "-o", str(out)]
    assert main([*args, "--default-period", "7d", "--windows", str(base / "windows/7d.yaml")]) == 0
    assert "(13.44 * 0.001)" in out.read_text()
    assert "slo:sli_error:ratio_rate1w" in out.read_text()


def test_rules_refuses_an_slo_it_cannot_express(
    conformance: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = conformance / "openslo/spec/examples/budgeting-method/occurences-slo.yaml"
    assert main(["rules", str(path)]) == 1
    assert "not Prometheus" in capsys.readouterr().err
