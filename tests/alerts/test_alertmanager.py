"""Alertmanager: pushed alerts match its API, and a real Alertmanager routes them onward."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft4Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from alerts.alertmanager import AlertmanagerNotifier, build_alertmanager_alerts
from alerts.config import AlertmanagerReceiver
from alerts.describe import DEFAULT_ALERTNAME, bytewatch_annotations
from alerts.errors import FinalDeliveryFailure
from alerts.model import Alert
from alerts.notifier import Delivered
from alerts.webhook import build_webhook_body
from tests.alerts.receiver import RecordingReceiver
from tests.alerts.samples import T0, alert, alert_names, notification, resolved, webhook_shape
from tests.ci import require_binary
from tests.conftest import CONFORMANCE

OPENAPI = CONFORMANCE / "alertmanager" / "repo" / "api" / "v2" / "openapi.yaml"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def postable_alerts_validator() -> Draft4Validator:
    document = yaml.safe_load(OPENAPI.read_text())
    uri = "urn:alertmanager:api-v2"
    registry: Registry[Any] = Registry().with_resource(
        uri, Resource.from_contents(document, default_specification=DRAFT4)
    )
    return Draft4Validator({"$ref": f"{uri}#/definitions/postableAlerts"}, registry=registry)


VALIDATOR = postable_alerts_validator()


@pytest.mark.parametrize("name", alert_names())
@pytest.mark.parametrize("ended", [False, True], ids=["firing", "resolved"])
def test_every_pushed_body_validates_against_alertmanagers_api(name: str, ended: bool) -> None:
    subject = resolved(alert(name)) if ended else alert(name)
    body = build_alertmanager_alerts(notification(subject), T0, 60)
    assert [e.message for e in VALIDATOR.iter_errors(body)] == []


def test_the_schema_check_would_catch_a_label_that_is_not_a_string() -> None:
    body = build_alertmanager_alerts(notification(alert("checkout_fast_burn")), T0, 60)
    body[0]["labels"]["slo"] = 3
    assert [e.message for e in VALIDATOR.iter_errors(body)] != []


def test_a_firing_alert_is_a_lease_of_four_resend_intervals() -> None:
    now = T0 + timedelta(minutes=10)
    (pushed,) = build_alertmanager_alerts(notification(alert("checkout_fast_burn")), now, 60)
    assert pushed["startsAt"] == "2024-01-01T00:00:00Z"
    assert pushed["endsAt"] == "2024-01-01T00:14:00Z"
    assert pushed["labels"]["alertname"] == DEFAULT_ALERTNAME
    assert pushed["annotations"]["runbook_url"].startswith("https://")
    assert pushed["generatorURL"].startswith("http://bytewatch.example")


def test_a_resolved_alert_ends_when_it_ended() -> None:
    now = T0 + timedelta(hours=3)
    body = build_alertmanager_alerts(notification(resolved(alert("checkout_fast_burn"))), now, 60)
    assert body[0]["endsAt"] == "2024-01-01T00:42:00Z"


def test_empty_labels_and_urls_are_left_out_as_prometheus_does() -> None:
    subject = replace(
        alert("search_slow_burn"), labels=(*alert("search_slow_burn").labels, ("team", ""))
    )
    (pushed,) = build_alertmanager_alerts(notification(subject), T0, 60)
    assert "team" not in pushed["labels"]
    assert "generatorURL" not in pushed


# --- a real Alertmanager on loopback ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningAlertmanager:
    url: str
    hook: RecordingReceiver

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[RunningAlertmanager]:
    require_binary(ALERTMANAGER, "Debian's prometheus-alertmanager; setup.sh --dev installs it")
    with RecordingReceiver() as hook:
        config = {
            "route": {
                "receiver": "hook",
                "group_by": ["alertname", "slo"],
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "hook",
                    "webhook_configs": [{"url": f"{hook.url}/am", "send_resolved": True}],
                }
            ],
        }
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
        port = _free_port()
        process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "alertmanager.log").open("w"),
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, tmp_path / "alertmanager.log")
            yield RunningAlertmanager(url=url, hook=hook)
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"alertmanager exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail("alertmanager did not become ready within 10s")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _live(subject: Alert, started: datetime) -> Alert:
    return replace(subject, incident_started_at=started)


def test_a_real_alertmanager_fires_and_resolves_what_we_push(
    alertmanager: RunningAlertmanager,
) -> None:
    config = AlertmanagerReceiver(name="am", type="alertmanager", url=alertmanager.url)
    notifier = AlertmanagerNotifier(config, _now)
    started = _now() - timedelta(minutes=5)
    firing = _live(alert("checkout_fast_burn"), started)

    with httpx.Client() as client:
        assert notifier.send(notification(firing, receiver="am"), client) == Delivered("am", 200)
        (first,) = alertmanager.hook.wait_for(1)
        (stored,) = alertmanager.alerts()
        # Re-sent while firing, as Prometheus does: the lease moves, nobody is notified again.
        time.sleep(1.1)
        notifier.send(notification(firing, receiver="am"), client)
        (extended,) = alertmanager.alerts()
        ended = replace(resolved(firing), ended_at=_now())
        notifier.send(notification(ended, receiver="am"), client)
        first, second = alertmanager.hook.wait_for(2, timeout_s=10)

    assert stored["labels"] == {**dict(firing.labels), "alertname": DEFAULT_ALERTNAME}
    assert stored["status"]["state"] == "active"
    lease = datetime.fromisoformat(stored["endsAt"]) - datetime.fromisoformat(stored["updatedAt"])
    assert timedelta(minutes=3) < lease <= timedelta(minutes=4, seconds=1)
    assert datetime.fromisoformat(extended["endsAt"]) > datetime.fromisoformat(stored["endsAt"])

    fired, cleared = first.json(), second.json()
    assert fired["status"] == "firing"
    assert fired["alerts"][0]["labels"] == stored["labels"]
    assert fired["alerts"][0]["annotations"] == bytewatch_annotations(firing)
    assert datetime.fromisoformat(fired["alerts"][0]["startsAt"]) == started
    assert cleared["status"] == "resolved"
    assert cleared["alerts"][0]["status"] == "resolved"


def test_our_webhook_body_is_shaped_like_a_real_alertmanagers(
    alertmanager: RunningAlertmanager,
) -> None:
    config = AlertmanagerReceiver(name="am", type="alertmanager", url=alertmanager.url)
    subject = _live(alert("checkout_fast_burn"), _now())
    with httpx.Client() as client:
        AlertmanagerNotifier(config, _now).send(notification(subject, receiver="am"), client)
    (got,) = alertmanager.hook.wait_for(1)
    theirs = got.json()
    ours = build_webhook_body(notification(subject, receiver="hook"))
    assert webhook_shape(ours) == webhook_shape(theirs)
    assert ours["alerts"][0]["labels"] == theirs["alerts"][0]["labels"]
    assert ours["alerts"][0]["annotations"] == theirs["alerts"][0]["annotations"]
    assert ours["alerts"][0]["endsAt"] == theirs["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"


def test_alertmanager_rejecting_a_body_is_a_final_failure(
    alertmanager: RunningAlertmanager,
) -> None:
    config = AlertmanagerReceiver(name="am", type="alertmanager", url=alertmanager.url)
    bad = replace(alert("checkout_fast_burn"), labels=(("not a label name", "x"),))
    with httpx.Client() as client, pytest.raises(FinalDeliveryFailure, match="HTTP 400"):
        AlertmanagerNotifier(config, _now).send(notification(bad, receiver="am"), client)
    assert json.dumps(alertmanager.alerts()) == "[]"
