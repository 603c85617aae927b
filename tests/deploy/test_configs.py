"""The configuration files we ship load exactly as `bytewatch run --config FILE` reads them,
and the demo's SLOs select the routes the probe will report for the demo's traffic."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from probe.routes import Router
from slo.model import EndpointSli
from slo.settings import ConfigError, load_config
from slo.spec import load_paths
from tests.deploy.files import (
    DEPLOY,
    EXAMPLE_CONFIG,
    kubernetes_objects,
    secret_refs,
    write_secrets,
)

DEMO = DEPLOY / "demo"


def placeholder_secrets() -> dict[str, str]:
    """Values of the shape each secret needs, from the Kubernetes Secret's placeholders."""
    secret = kubernetes_objects()[("Secret", "bytewatch-receivers")]
    return dict(secret["stringData"])


def test_the_example_config_loads_with_its_secrets_from_the_secrets_directory(
    tmp_path: Path,
) -> None:
    secrets = write_secrets(tmp_path / "secrets", placeholder_secrets())
    config = load_config(EXAMPLE_CONFIG, environ={}, secrets_dir=secrets)
    assert config.receivers.names == ("payments-pager", "payments-slack", "alertmanager")
    assert config.route is not None and config.route.receiver == "alertmanager"
    assert config.settings.api.token is not None  # from the file api__token
    assert config.settings.store.path == Path("/var/lib/bytewatch/bytewatch.db")


def test_the_example_config_refuses_to_load_without_its_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pagerduty-routing-key") as caught:
        load_config(EXAMPLE_CONFIG, environ={}, secrets_dir=tmp_path)
    assert "slack-webhook-url" in str(caught.value)


def test_the_example_config_names_only_secrets_the_kubernetes_secret_provides() -> None:
    used = set(secret_refs(yaml.safe_load(EXAMPLE_CONFIG.read_text())))
    assert used and used <= set(placeholder_secrets())


def test_the_example_slo_files_load() -> None:
    loaded = load_paths([DEPLOY / "examples" / "slos"])
    assert loaded.files >= 2 and loaded.slos


def test_the_demo_config_loads_with_the_printer_as_its_only_receiver() -> None:
    config = load_config(DEMO / "bytewatch.yaml", environ={})
    assert config.receivers.names == ("demo-webhook",)
    assert config.route is not None and config.route.receiver == "demo-webhook"
    assert config.settings.api.listen == "127.0.0.1:9477"
    assert config.services.resolve("node", 8081, 1) == "shop"
    assert config.services.resolve("python3", 8082, 1) == "payments"


def test_the_demo_slos_load_and_send_to_receivers_the_demo_config_defines() -> None:
    config = load_config(DEMO / "bytewatch.yaml", environ={})
    files = [DEMO / name for name in config.settings.slos.files]  # relative to the config
    loaded = load_paths(files)
    assert loaded.services == ("payments", "shop")
    slos = yaml.safe_load((DEMO / "slos.yaml").read_text())
    named = {r for service in slos["services"] for r in service.get("receivers", [])}
    assert named and named <= set(config.receivers.names)


# Paths as traffic.py sends them, and the route each must get for the demo SLOs to see it.
DEMO_PATHS = [
    pytest.param("shop", "/products/sku-10042", "/products/:id", id="a product page"),
    pytest.param("shop", "/cart/cart-123456/items", "/cart/:id/items", id="adding to a cart"),
    pytest.param("payments", "/payments", "/payments", id="creating a payment"),
    pytest.param("payments", "/payments/pay_0123456789abcdef", "/payments/:id", id="a payment"),
]


@pytest.mark.parametrize(("service", "path", "route"), DEMO_PATHS)
def test_the_demo_routes_are_the_ones_its_slos_select(service: str, path: str, route: str) -> None:
    config = load_config(DEMO / "bytewatch.yaml", environ={})
    assert Router(config.routes).route(service, path) == route


def test_every_exact_route_a_demo_slo_selects_is_one_the_demo_traffic_produces() -> None:
    produced = {(p.values[0], p.values[2]) for p in DEMO_PATHS}
    loaded = load_paths([DEMO / "slos.yaml"])
    selected = {
        (slo.sli.selector.service, slo.sli.selector.route)
        for slo in loaded.slos
        if isinstance(slo.sli, EndpointSli) and slo.sli.selector.route is not None
    }
    assert selected and selected <= produced
