"""Which service an exchange belongs to: rules, and the names processes give themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.errors import ConfigFieldError
from probe.procfs import process_names
from probe.services import (
    ProcessNames,
    ServiceMap,
    ServiceRule,
    hostname_in,
    in_kubernetes_pod,
    kubernetes_workload,
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
# A pod's container under the kubelet's systemd driver (v2), its cgroupfs driver (v1), and as
# seen from inside another cgroup namespace.
CGROUP_POD_SYSTEMD = (
    "0::/kubepods.slice/kubepods-burstable.slice/"
    "kubepods-burstable-pod6f1c2e3d_5b6a_4c7d_8e9f_0a1b2c3d4e5f.slice/"
    "cri-containerd-4f1c2e3d5b6a.scope\n"
)
CGROUP_POD_CGROUPFS = (
    "8:pids:/kubepods/besteffort/pod6f1c2e3d-5b6a-4c7d-8e9f-0a1b2c3d4e5f/4f1c2e3d5b6a\n"
    "1:name=systemd:/kubepods/besteffort/pod6f1c2e3d-5b6a-4c7d-8e9f-0a1b2c3d4e5f/4f1c2e3d5b6a\n"
)
CGROUP_POD_NAMESPACED = "0::/../../kubepods-besteffort-pod6f1c2e3d.slice/cri-containerd-4f.scope\n"


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


@pytest.mark.parametrize(
    ("pod", "workload"),
    [
        ("checkout-5d4f8b9c7-x2x9z", "checkout"),  # a Deployment's
        ("api-v2-6b8c9d7f45-q7wzt", "api-v2"),  # whose own name ends in a digit
        ("node-exporter-x7k2p", "node-exporter"),  # a DaemonSet's or a Job's
        ("kube-proxy-4rx9m", "kube-proxy"),
        ("ledger-0", "ledger"),  # a StatefulSet's
        ("ledger-12", "ledger"),
        ("nightly-report-29412345-bc7tq", "nightly-report"),  # a CronJob's Job's
        ("checkout-5d4f8b9c7-x2x9z.checkout.shop.svc.cluster.local", "checkout"),  # an FQDN
        ("debug", "debug"),  # made by hand
        ("my-app-v2", "my-app-v2"),
        ("billing-api", "billing-api"),  # "api" has vowels: never a random suffix
        ("  ", None),
    ],
)
def test_a_pods_workload_is_its_name_without_what_kubernetes_added(
    pod: str, workload: str | None
) -> None:
    assert kubernetes_workload(pod) == workload


@pytest.mark.parametrize(
    ("cgroup", "in_pod"),
    [
        (CGROUP_POD_SYSTEMD, True),
        (CGROUP_POD_CGROUPFS, True),
        (CGROUP_POD_NAMESPACED, True),
        (CGROUP_V2, False),
        (CGROUP_DOCKER, False),
        (CGROUP_NONE, False),
        ("", False),
    ],
)
def test_a_process_is_in_a_pod_when_its_cgroup_is_under_kubepods(cgroup: str, in_pod: bool) -> None:
    assert in_kubernetes_pod(cgroup) is in_pod


def test_the_hostname_is_read_from_the_environment() -> None:
    assert hostname_in(environ("HOME=/", "HOSTNAME=checkout-5d4f8b9c7-x2x9z")) == (
        "checkout-5d4f8b9c7-x2x9z"
    )
    assert hostname_in(environ("HOME=/")) is None


def fake_process(proc: Path, pid: int, *, environ_: bytes, cgroup: str, uts: str) -> None:
    (proc / str(pid) / "ns").mkdir(parents=True)
    (proc / str(pid) / "environ").write_bytes(environ_)
    (proc / str(pid) / "cgroup").write_text(cgroup)
    (proc / str(pid) / "ns" / "uts").symlink_to(uts)


HOST_UTS = "uts:[4026531838]"


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    """A /proc with the host's init (pid 1) in it."""
    fake_process(tmp_path, 1, environ_=b"", cgroup=CGROUP_NONE, uts=HOST_UTS)
    return tmp_path


def test_a_process_in_a_pod_is_named_after_its_workload(proc: Path) -> None:
    pod = environ("HOSTNAME=checkout-5d4f8b9c7-x2x9z", "OTEL_SERVICE_NAME=checkout-api")
    fake_process(proc, 42, environ_=pod, cgroup=CGROUP_POD_SYSTEMD, uts="uts:[4026532301]")
    assert process_names(42, frozenset({"kubernetes"}), proc) == ProcessNames(kubernetes="checkout")
    assert process_names(42, frozenset({"otel", "kubernetes", "systemd"}), proc) == ProcessNames(
        otel="checkout-api", kubernetes="checkout"
    )


def test_a_pod_on_the_hosts_network_has_the_nodes_name_and_is_not_named_by_it(proc: Path) -> None:
    node = environ("HOSTNAME=ip-10-0-1-23.ec2.internal")
    fake_process(proc, 42, environ_=node, cgroup=CGROUP_POD_CGROUPFS, uts=HOST_UTS)
    assert process_names(42, frozenset({"kubernetes"}), proc) == ProcessNames()


def test_a_process_outside_any_pod_is_not_named_by_its_hostname(proc: Path) -> None:
    docker = environ("HOSTNAME=4f1c2e3d5b6a")
    fake_process(proc, 42, environ_=docker, cgroup=CGROUP_DOCKER, uts="uts:[4026532301]")
    assert process_names(42, frozenset({"kubernetes"}), proc) == ProcessNames()


def test_a_process_gone_or_hidden_has_no_kubernetes_name(proc: Path) -> None:
    assert process_names(42, frozenset({"kubernetes"}), proc) == ProcessNames()


RULES = ServiceMap(
    (
        ServiceRule(name="edge", comm="nginx"),
        ServiceRule(name=None, name_from="otel"),
        ServiceRule(name=None, name_from="systemd", comm="java"),
        ServiceRule(name=None, name_from="kubernetes"),
    )
)


def test_a_name_from_rule_names_the_service_after_the_process() -> None:
    assert RULES.resolve("node", 8080, 7, ProcessNames(otel="checkout")) == "checkout"
    assert RULES.resolve("java", None, 7, ProcessNames(systemd="ledger")) == "ledger"
    assert RULES.resolve("python3", 80, 7, ProcessNames(kubernetes="checkout")) == "checkout"


def test_a_name_from_rule_is_passed_over_when_the_process_does_not_say() -> None:
    assert RULES.resolve("node", 8080, 7, ProcessNames(systemd="web")) == "node"
    assert RULES.resolve("java", 8080, 7) == "java"


def test_rules_still_apply_in_order_around_name_from_rules() -> None:
    assert RULES.resolve("nginx", 80, 7, ProcessNames(otel="ignored")) == "edge"


def test_a_map_reads_only_the_sources_its_rules_name() -> None:
    assert RULES.names_from == frozenset({"otel", "systemd", "kubernetes"})
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
        (
            {"name_from": "env"},
            ("services", 0, "name_from"),
            "expected one of otel, systemd, kubernetes",
        ),
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
