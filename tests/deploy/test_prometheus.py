"""promtool accepts the Prometheus config, with the rules `bytewatch rules` writes for our SLO
files in the rules/ directory it reads, and its Kubernetes job finds the DaemonSet's pods."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from slo.rules import render_rules
from slo.spec import load_paths
from tests.ci import skip_or_fail
from tests.deploy.files import DEPLOY, kubernetes_objects

PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
CONFIG = yaml.safe_load(PROMETHEUS_YML.read_text())
JOBS = {job["job_name"]: job for job in CONFIG["scrape_configs"]}
# Debian's prometheus is built without Kubernetes service discovery.
NO_KUBERNETES_SD = "field kubernetes_sd_configs not found"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        skip_or_fail("promtool is not installed (scripts/setup.sh --dev installs prometheus)")
    return found


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "check", "config", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_promtool_accepts_the_config_and_the_generated_rules(tmp_path: Path) -> None:
    rules = render_rules(
        load_paths([DEPLOY / "examples" / "slos", DEPLOY / "demo" / "slos.yaml"]).slos
    )
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bytewatch-slos.yml").write_text(rules)
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS_YML.read_text())
    result = check_config(config)
    if result.returncode != 0 and NO_KUBERNETES_SD in result.stdout + result.stderr:
        # This promtool cannot read the Kubernetes job; check everything else with it.
        kept = {**CONFIG, "scrape_configs": [j for j in CONFIG["scrape_configs"]
                                             if "kubernetes_sd_configs" not in j]}  # fmt: skip
        config.write_text(yaml.safe_dump(kept))
        result = check_config(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: \d+ rules found", result.stdout + result.stderr)


def test_the_static_job_scrapes_the_agents_port() -> None:
    targets = [t for group in JOBS["bytewatch"]["static_configs"] for t in group["targets"]]
    assert targets and all(t.endswith(":9477") for t in targets)
    assert JOBS["bytewatch"]["metrics_path"] == "/metrics"


def relabel(job: dict[str, Any], meta: dict[str, str]) -> dict[str, str] | None:
    """Apply ``keep`` and replace-to-target rules (the kinds the job uses); None if dropped."""
    labels = dict(meta)
    for rule in job["relabel_configs"]:
        joined = ";".join(labels.get(name, "") for name in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), joined)
        if rule.get("action", "replace") == "keep":
            if match is None:
                return None
        elif match is not None:
            labels[rule["target_label"]] = match.expand(rule.get("replacement", r"\1"))
    return labels


def pod_target(port_name: str) -> dict[str, str]:
    """The discovery labels Prometheus gives one container port of a DaemonSet pod."""
    daemonset = kubernetes_objects()[("DaemonSet", "bytewatch")]
    template = daemonset["spec"]["template"]
    meta = {"__meta_kubernetes_pod_node_name": "node-a", "__metrics_path__": "/metrics"}
    for name, value in template["metadata"]["labels"].items():
        meta[f"__meta_kubernetes_pod_label_{re.sub(r'[^a-zA-Z0-9_]', '_', name)}"] = value
    for name, value in template["metadata"]["annotations"].items():
        meta[f"__meta_kubernetes_pod_annotation_{re.sub(r'[^a-zA-Z0-9_]', '_', name)}"] = value
    meta["__meta_kubernetes_pod_container_port_name"] = port_name
    return meta


def test_the_kubernetes_job_keeps_the_agents_metrics_port_and_names_it_after_the_node() -> None:
    job = JOBS["bytewatch-kubernetes"]
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["bytewatch"]
    kept = relabel(job, pod_target("metrics"))
    assert kept is not None
    assert (kept["instance"], kept["__metrics_path__"]) == ("node-a", "/metrics")
    assert relabel(job, pod_target("other")) is None


def test_the_readme_shows_the_rules_command_that_the_config_reads() -> None:
    readme = (DEPLOY / "prometheus" / "README.md").read_text()
    (rule_glob,) = CONFIG["rule_files"]
    command = re.search(r"bytewatch rules \S+ -o (\S+)", readme)
    assert command is not None
    assert Path(command.group(1)).match(rule_glob)
