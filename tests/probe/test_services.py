"""Which service an exchange belongs to: rules, and the names processes give themselves."""

from __future__ import annotations

import pytest

from probe.errors import ConfigFieldError
from probe.services import (
    ProcessNames,
    ServiceMap,
    ServiceRule,
    load_service_map,
    otel_service_name,
    systemd_unit,
)

# /proc/PID/cgroup as these kernels write it.
CGROUP_V2 = "0::/system.slice/payments.service\n"
CGROUP_HYBRID = (
    "12:pids:/system.slice/payments.service\n"
    "4:memory:/system.slice/payments.service\n"
    "1:name=systemd:/system.slice/payments.service\n"
    "0::/system.slice/payments.service\n"
)
CGROUP_V1 = "4:memory:/system.slice/payments.service\n1:name=systemd:/system.slice/ledger.service\n"
CGROUP_USER_SERVICE = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/sync.service\n"
CGROUP_LOGIN_SESSION = "0::/user.slice/user-1000.slice/session-4.scope\n"
CGROUP_DOCKER = "0::/system.slice/docker-4f1c2e3d5b6a.scope\n"
CGROUP_NONE = "0::/\n"


def environ(*entries: str) -> bytes:
    return b"\0".join(entry.encode() for entry in entries) + b"\0"


def test_otel_service_name_comes_first_then_the_resource_attributes() -> None:
    both = environ(
        "PATH=/usr/bin", "OTEL_RESOURCE_ATTRIBUTES=service.name=from-attrs", "OTEL_SERVICE_NAME=api"
    )
    assert otel_service_name(both) == "api"
    attributes = environ("OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod, service.name=cart")
    assert otel_service_name(attributes) == "cart"


def test_resource_attribute_values_are_percent_decoded() -> None:
    assert otel_service_name(environ("OTEL_RESOURCE_ATTRIBUTES=service.name=my%20api")) == "my api"


def test_a_process_that_says_nothing_usable_has_no_otel_name() -> None:
    assert otel_service_name(b"") is None
    assert otel_service_name(environ("HOME=/root", "SERVICE_NAME=not-otel")) is None
    assert otel_service_name(environ("OTEL_SERVICE_NAME=  ")) is None
    assert otel_service_name(environ("OTEL_SERVICE_NAME=bad\x07bell")) is None
    assert otel_service_name(environ(f"OTEL_SERVICE_NAME={'x' * 300}")) is None


def test_an_empty_otel_service_name_leaves_the_resource_attributes_to_decide() -> None:
    env = environ("OTEL_SERVICE_NAME=", "OTEL_RESOURCE_ATTRIBUTES=service.name=cart")
    assert otel_service_name(env) == "cart"


@pytest.mark.parametrize(
    ("cgroup", "unit"),
    [
        (CGROUP_V2, "payments"),
        (CGROUP_HYBRID, "payments"),
        (CGROUP_V1, "ledger"),  # systemd's own hierarchy, not a controller's
        (CGROUP_USER_SERVICE, "sync"),  # the innermost service, not the user's manager
        (CGROUP_LOGIN_SESSION, None),
        (CGROUP_DOCKER, None),
        (CGROUP_NONE, None),
        ("", None),
    ],
)
def test_the_systemd_unit_is_the_innermost_service_on_systemds_hierarchy(
    cgroup: str, unit: str | None
) -> None:
    assert systemd_unit(cgroup) == unit


RULES = ServiceMap(
    (
        ServiceRule(name="edge", comm="nginx"),
        ServiceRule(name=None, name_from="otel"),
        ServiceRule(name=None, name_from="systemd", comm="java"),
    )
)


def test_a_name_from_rule_names_the_service_after_the_process() -> None:
    assert RULES.resolve("node", 8080, 7, ProcessNames(otel="checkout")) == "checkout"
    assert RULES.resolve("java", None, 7, ProcessNames(systemd="ledger")) == "ledger"


def test_a_name_from_rule_is_passed_over_when_the_process_does_not_say() -> None:
    assert RULES.resolve("node", 8080, 7, ProcessNames(systemd="web")) == "node"
    assert RULES.resolve("java", 8080, 7) == "java"


def test_rules_still_apply_in_order_around_name_from_rules() -> None:
    assert RULES.resolve("nginx", 80, 7, ProcessNames(otel="ignored")) == "edge"


def test_a_map_reads_only_the_sources_its_rules_name() -> None:
    assert RULES.names_from == frozenset({"otel", "systemd"})
    assert ServiceMap((ServiceRule(name="edge", comm="nginx"),)).names_from == frozenset()


def test_name_from_rules_load_with_or_without_a_match() -> None:
    loaded = load_service_map([{"name_from": "otel"}, {"name_from": "systemd", "comm": "java"}])
    assert loaded.rules == (
        ServiceRule(name=None, name_from="otel"),
        ServiceRule(name=None, name_from="systemd", comm="java"),
    )


@pytest.mark.parametrize(
    ("item", "where", "says"),
    [
        ({"name_from": "env"}, ("services", 0, "name_from"), "expected one of otel, systemd"),
        (
            {"name": "x", "name_from": "otel"},
            ("services", 0, "name_from"),
            "set name or name_from, not both",
        ),
        ({"comm": "node"}, ("services", 0, "name"), "service name (or name_from) is required"),
        ({"name_from": "otel", "port": 0}, ("services", 0, "port"), "from 1 to 65535"),
    ],
)
def test_a_bad_rule_names_the_field_at_fault(
    item: dict[str, object], where: tuple[str | int, ...], says: str
) -> None:
    with pytest.raises(ConfigFieldError) as caught:
        load_service_map([item])
    assert caught.value.location == where
    assert says in str(caught.value)
