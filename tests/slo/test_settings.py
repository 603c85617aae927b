"""The configuration: a file, the environment and a secrets directory, checked as a whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from slo.settings import ConfigError, config_path_from, load_config

FULL = """\
probe:
  capture_bytes: 2048
  filters: {ports: [8080]}
services:
  - {name: payments, comm: node, port: 8080}
routes:
  patterns:
    payments: ["/users/{id}"]
semantics:
  rules:
    - name: declined
      when: {json: {field: status, equals: declined}}
      error: true
      type: card_declined
health:
  windows: [5m, 1h]
  latency_target: 300ms
store:
  path: {store}
  flush_interval: 5s
evaluator:
  interval: 10s
alerting:
  receivers:
    - name: oncall
      type: webhook
      url: http://127.0.0.1:9999/hook
  route:
    receiver: oncall
api:
  listen: 127.0.0.1:9477
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bytewatch.yaml"
    path.write_text(text)
    return path


def problems_of(path: Path | None, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=kwargs.pop("environ", {}), **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def test_no_file_at_all_means_the_documented_defaults() -> None:
    config = load_config(None, environ={})
    settings = config.settings
    assert settings.api.listen == "127.0.0.1:9477"
    assert settings.store.flush_interval == 10.0
    assert settings.health.windows == [300.0, 3600.0]
    assert config.route is None and config.receivers.names == ()


def test_a_full_file_loads_with_durations_in_seconds_and_every_section_validated(
    tmp_path: Path,
) -> None:
    store = tmp_path / "sli.db"
    config = load_config(write(tmp_path, FULL.replace("{store}", str(store))), environ={})
    assert config.settings.probe.capture_bytes == 2048
    assert config.settings.health.latency_target == 0.3
    assert config.settings.store.path == store
    assert config.services.resolve("node", 8080, 1) == "payments"
    assert config.receivers.names == ("oncall",)
    assert config.route is not None and config.route.receiver == "oncall"
    assert config.outbox_path == tmp_path / "outbox.db"


def test_an_unknown_key_is_an_error_that_names_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "store:\n  path: /tmp/x.db\n  flush_intervall: 5s\n")
    assert problems_of(path) == [f"{path}:3:3: store.flush_intervall: unknown key"]


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    path = write(tmp_path, "api:\n  listen: 1\n  tokn: x\nhealth:\n  windows: [5x]\n")
    found = problems_of(path)
    assert len(found) == 3
    assert any(p.startswith(f"{path}:3:3: api.tokn: unknown key") for p in found)
    assert any(f"{path}:5:" in p and "health.windows[0]" in p for p in found)


def test_a_bad_routes_section_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "routes:\n  patterns:\n    payments: [42]\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:3:") and "routes.patterns.payments" in problem


def test_environment_variables_override_the_file_and_unknown_ones_are_errors(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "api:\n  listen: 127.0.0.1:1\n")
    config = load_config(
        path,
        environ={
            "BYTEWATCH_API__LISTEN": "0.0.0.0:9000",
            "BYTEWATCH_PROBE__FILTERS__PORTS": "[80, 443]",
        },
    )
    assert config.settings.api.listen == "0.0.0.0:9000"
    assert config.settings.probe.filters.ports == [80, 443]
    [problem] = problems_of(path, environ={"BYTEWATCH_API__LISTN": "x"})
    assert problem == "BYTEWATCH_API__LISTN: api.listn: unknown key"


def test_the_secrets_directory_sets_the_api_token_and_nothing_echoes_it(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api__token").write_text("s3cr3t-token\n")
    config = load_config(None, environ={}, secrets_dir=secrets)
    assert config.settings.api.token is not None
    assert config.settings.api.token.get_secret_value() == "s3cr3t-token"
    assert "s3cr3t-token" not in repr(config)


def test_a_receiver_problem_is_placed_in_the_file_and_never_quotes_the_secret(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        (
            "alerting:\n  receivers:\n    - name: slack\n      type: slack\n"
            "      webhook_url: not-a-url-but-secret-123\n"
        ),
    )
    [problem] = problems_of(path)
    assert "alerting.receivers[0].webhook_url" in problem
    assert "secret-123" not in problem


def test_a_route_to_an_undefined_receiver_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (
            "alerting:\n  receivers:\n    - {name: a, type: webhook, url: 'http://127.0.0.1:1/'}\n"
            "  route:\n    receiver: b\n"
        ),
    )
    [problem] = problems_of(path)
    assert "alerting.route.receiver" in problem and "'b'" in problem


def test_two_receivers_without_a_route_ask_for_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (
            "alerting:\n  receivers:\n"
            "    - {name: a, type: webhook, url: 'http://127.0.0.1:1/'}\n"
            "    - {name: b, type: webhook, url: 'http://127.0.0.1:2/'}\n"
        ),
    )
    [problem] = problems_of(path)
    assert "a route must say which gets what" in problem


def test_the_config_path_comes_from_the_flag_then_the_environment(tmp_path: Path) -> None:
    flag = tmp_path / "a.yaml"
    assert config_path_from(flag, {"BYTEWATCH_CONFIG": "/x.yaml"}) == flag
    assert config_path_from(None, {"BYTEWATCH_CONFIG": "/x.yaml"}) == Path("/x.yaml")


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "store:\n  path: state/sli.db\n")
    config = load_config(path, environ={})
    assert config.settings.store.path == tmp_path / "state" / "sli.db"
    assert config.outbox_path == tmp_path / "state" / "outbox.db"


def test_tls_binaries_in_the_file_are_relative_to_the_file_too(tmp_path: Path) -> None:
    path = write(tmp_path, "probe:\n  tls_binaries: [bin/api, /opt/app/server]\n")
    config = load_config(path, environ={})
    assert config.settings.probe.tls_binaries == [tmp_path / "bin" / "api", Path("/opt/app/server")]
