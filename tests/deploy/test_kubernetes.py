"""The Kubernetes manifests: a DaemonSet that mounts what the probe needs from the host, with
the documented capabilities, and a ConfigMap and Secret that load as the agent reads them."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from slo.settings import load_config
from slo.spec import load_paths
from tests.ci import skip_or_fail
from tests.deploy.files import (
    CAPABILITIES,
    KUBERNETES,
    host_paths_the_probe_needs,
    kubernetes_objects,
    write_secrets,
    yaml_documents,
)

OBJECTS = kubernetes_objects()
DAEMONSET = OBJECTS[("DaemonSet", "bytewatch")]
POD = DAEMONSET["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]
CONFIGMAP = OBJECTS[("ConfigMap", "bytewatch-config")]
SECRET = OBJECTS[("Secret", "bytewatch-receivers")]
MOUNTS = {m["mountPath"]: m for m in CONTAINER["volumeMounts"]}
VOLUMES = {v["name"]: v for v in POD["volumes"]}


def env(name: str) -> str:
    return str(next(e["value"] for e in CONTAINER["env"] if e["name"] == name))


def mount_of(volume: str) -> PurePosixPath:
    return PurePosixPath(next(p for p, m in MOUNTS.items() if m["name"] == volume))


def config_text() -> str:
    return str(CONFIGMAP["data"]["bytewatch.yaml"])


@pytest.mark.parametrize("path", sorted(KUBERNETES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_manifest_is_an_object_with_a_kind_and_a_name(path: Path) -> None:
    for doc in yaml_documents(path):
        assert {"apiVersion", "kind"} <= set(doc)
        if doc["kind"] == "Kustomization":
            assert doc["namespace"] == "bytewatch"
        elif doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == "bytewatch"
        else:
            assert doc["metadata"]["name"] and doc["metadata"]["namespace"] == "bytewatch"


def test_the_kustomization_lists_files_that_exist_and_kustomize_builds_them() -> None:
    (kustomization,) = yaml_documents(KUBERNETES / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (KUBERNETES / resource).is_file(), resource
    if shutil.which("kubectl") is None:
        skip_or_fail("kubectl is not installed")
    built = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(built.stdout))
    assert kinds == ["ConfigMap", "DaemonSet", "Namespace", "Secret", "Service"]


def test_the_pods_share_the_hosts_pids_to_read_every_process() -> None:
    assert POD["hostPID"] is True


def test_the_container_gets_the_documented_capabilities_and_nothing_else() -> None:
    context = CONTAINER["securityContext"]
    assert context["privileged"] is False and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert {f"CAP_{c}" for c in context["capabilities"]["add"]} == CAPABILITIES


@pytest.mark.parametrize("path", sorted(host_paths_the_probe_needs()))
def test_every_host_path_the_setup_script_prepares_is_mounted_read_only_at_the_same_place(
    path: str,
) -> None:
    wanted = PurePosixPath(path)
    covering = [
        (mount_path, mount)
        for mount_path, mount in MOUNTS.items()
        if wanted == PurePosixPath(mount_path) or PurePosixPath(mount_path) in wanted.parents
    ]
    assert covering, f"nothing mounts {path}"
    mount_path, mount = max(covering, key=lambda item: len(item[0]))
    host_path = VOLUMES[mount["name"]].get("hostPath", {}).get("path")
    assert host_path == mount_path  # BCC and the headers' symlinks use the host's paths
    assert mount.get("readOnly") is True


def test_every_mount_names_a_volume_and_every_volume_is_mounted() -> None:
    assert {m["name"] for m in MOUNTS.values()} == set(VOLUMES)


def test_the_configmap_config_loads_with_the_secret_as_its_secrets_directory(
    tmp_path: Path,
) -> None:
    config_file = tmp_path / "bytewatch.yaml"
    config_file.write_text(config_text())
    secrets = write_secrets(tmp_path / "secrets", SECRET["stringData"])
    config = load_config(config_file, environ={}, secrets_dir=secrets)
    assert set(config.receivers.names) == {"payments-pager", "payments-slack", "alertmanager"}
    assert config.settings.api.token is not None  # the Secret's api__token
    assert str(mount_of("secrets")) == env("BYTEWATCH_SECRETS_DIR")
    assert mount_of("state") == PurePosixPath(config.settings.store.path).parent


def test_the_container_reads_the_config_where_the_configmap_is_mounted() -> None:
    args = CONTAINER["args"]
    config_path = PurePosixPath(args[args.index("--config") + 1])
    assert config_path.parent == mount_of("config") and config_path.name in CONFIGMAP["data"]


def test_the_configmaps_slo_files_are_the_ones_its_glob_finds_and_they_load(
    tmp_path: Path,
) -> None:
    (pattern,) = yaml.safe_load(config_text())["slos"]["files"]
    mounted = {str(mount_of("config") / key): key for key in CONFIGMAP["data"]}
    found = sorted(key for path, key in mounted.items() if fnmatch.fnmatch(path, pattern))
    assert found == sorted(set(CONFIGMAP["data"]) - {"bytewatch.yaml"})
    for key in found:
        (tmp_path / key).write_text(CONFIGMAP["data"][key])
    loaded = load_paths([tmp_path / key for key in found])
    assert loaded.services == ("checkout", "payments")


def test_prometheus_finds_the_metrics_port_the_agent_listens_on() -> None:
    listen = yaml.safe_load(config_text())["api"]["listen"]
    (port,) = CONTAINER["ports"]
    assert listen == f"0.0.0.0:{port['containerPort']}"
    annotations = DAEMONSET["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    (monitor,) = yaml_documents(KUBERNETES / "podmonitor.yaml")
    endpoint: dict[str, Any] = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == port["name"] == "metrics"
    labels = DAEMONSET["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = OBJECTS[("Service", "bytewatch")]
    assert service["spec"]["selector"].items() <= labels.items()
