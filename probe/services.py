"""Which service an exchange belongs to: a configurable mapping, defaulting to the process name.

Configuration (the ``services:`` section of bytewatch's config file), first match wins::

    services:
      - name: payments
        comm: node          # process name, as in /proc/PID/comm
        port: 8080          # the local port the process serves on (server exchanges only)
      - name: legacy-billing
        pid: 4242
      - name_from: otel     # the name the process gives itself to OpenTelemetry
      - name_from: systemd  # the systemd unit it runs in, "payments.service" -> "payments"
      - name_from: kubernetes  # its pod's workload, "checkout-5d4f8b9c7-x2x9z" -> "checkout"

A rule matches when every field it sets matches. A port rule never matches a client exchange:
a client's local port is ephemeral and says nothing about who is calling.

A ``name_from`` rule names the service after the process itself, and is passed over for a
process that does not say: ``otel`` reads ``OTEL_SERVICE_NAME`` from its environment, else
``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES`` (OpenTelemetry's SDK configuration, which Beyla
reads too); ``systemd`` its unit from its cgroup; ``kubernetes`` the workload its pod belongs
to, from the pod's name (``kubernetes_workload``). Without one, every ``node`` or ``java`` on a
host is one service. It may also set ``comm``, ``port`` or ``pid``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from probe.errors import ConfigFieldError

_FIELDS = {"name", "name_from", "comm", "port", "pid"}
OTEL: Final = "otel"
SYSTEMD: Final = "systemd"
KUBERNETES: Final = "kubernetes"
NAME_SOURCES: Final = (OTEL, SYSTEMD, KUBERNETES)
Location = tuple[str | int, ...]
_LONGEST_NAME: Final = 255


@dataclass(frozen=True, slots=True)
class ProcessNames:
    """What a process says about which service it is, besides its process name."""

    otel: str | None = None  # OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES
    systemd: str | None = None  # its systemd unit, without ".service"
    kubernetes: str | None = None  # the workload of its pod: Deployment, StatefulSet, ...


NO_NAMES: Final = ProcessNames()


@dataclass(frozen=True, slots=True)
class ServiceRule:
    name: str | None  # None when the name comes from the process (name_from)
    comm: str | None = None
    port: int | None = None
    pid: int | None = None
    name_from: str | None = None  # one of NAME_SOURCES

    def matches(self, comm: str, port: int | None, pid: int) -> bool:
        if self.comm is not None and self.comm != comm:
            return False
        if self.port is not None and self.port != port:
            return False
        return self.pid is None or self.pid == pid

    def name_for(self, comm: str, port: int | None, pid: int, names: ProcessNames) -> str | None:
        """The service's name, or None when this rule does not apply."""
        if not self.matches(comm, port, pid):
            return None
        if self.name_from is None:
            return self.name
        if self.name_from == OTEL:
            return names.otel
        return names.systemd if self.name_from == SYSTEMD else names.kubernetes


@dataclass(frozen=True, slots=True)
class ServiceMap:
    rules: tuple[ServiceRule, ...] = ()

    @property
    def names_from(self) -> frozenset[str]:
        """The sources of names its rules read from processes: only those are read."""
        return frozenset(rule.name_from for rule in self.rules if rule.name_from is not None)

    def resolve(self, comm: str, port: int | None, pid: int, names: ProcessNames = NO_NAMES) -> str:
        """``port`` is the serving port for server exchanges and None for client exchanges."""
        for rule in self.rules:
            name = rule.name_for(comm, port, pid, names)
            if name is not None:
                return name
        return comm


def otel_service_name(environ: bytes) -> str | None:
    """The service name a process's environment (/proc/PID/environ) gives OpenTelemetry:
    OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES, whose values are
    percent-encoded; the first wins, as in OpenTelemetry's SDKs."""
    attributes = None
    for entry in environ.split(b"\0"):
        if entry.startswith(b"OTEL_SERVICE_NAME="):
            name = _usable(entry[len(b"OTEL_SERVICE_NAME=") :].decode("utf-8", "replace"))
            if name is not None:
                return name
        elif entry.startswith(b"OTEL_RESOURCE_ATTRIBUTES="):
            attributes = entry[len(b"OTEL_RESOURCE_ATTRIBUTES=") :].decode("utf-8", "replace")
    for pair in (attributes or "").split(","):
        key, _, value = pair.partition("=")
        if key.strip() == "service.name":
            return _usable(unquote(value))
    return None


def systemd_unit(cgroup: str) -> str | None:
    """The systemd service a process runs in, from /proc/PID/cgroup: the innermost
    "NAME.service" on the unified hierarchy's path (cgroup v2), else on systemd's own (v1)."""
    unified = legacy = ""
    for line in cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            unified = path
        elif controllers == "name=systemd":
            legacy = path
    for path in (unified, legacy):
        services = [part for part in path.split("/") if part.endswith(".service")]
        if services:
            return _usable(services[-1].removesuffix(".service"))
    return None


# Kubernetes makes the names of the pods it creates from their owner's name: a random suffix of
# five characters ("-x2x9z") for pods of a ReplicaSet, DaemonSet or Job, a ReplicaSet's own name
# is its Deployment's and the hash of its pod template ("-5d4f8b9c7", as many characters as the
# hash's decimal digits, nearly always 8 to 10), a StatefulSet's pods are numbered ("-0"), and a
# CronJob's Jobs carry their scheduled time in minutes ("-29412345"). The random characters and
# the hash are drawn from one alphabet without vowels (k8s.io/apimachinery/pkg/util/rand), so a
# name's own words are rarely mistaken for them.
_SAFE: Final = "[bcdfghjklmnpqrstvwxz2456789]"
_RANDOM_SUFFIX: Final = re.compile(f"(.+)-{_SAFE}{{5}}")
_TEMPLATE_HASH: Final = re.compile(f"(.+)-{_SAFE}{{6,10}}")
_ORDINAL_OR_SCHEDULE: Final = re.compile(r"(.+)-\d+")


def kubernetes_workload(pod: str) -> str | None:
    """The workload a pod belongs to, from the pod's name: "checkout-5d4f8b9c7-x2x9z" (a
    Deployment's) and "checkout-x2x9z" (a DaemonSet's or Job's) are "checkout", "ledger-0" (a
    StatefulSet's) is "ledger", and a pod made by hand keeps its name. A host name given as
    the pod's FQDN (setHostnameAsFQDN) is its first label."""
    pod = pod.strip().split(".", 1)[0]
    random = _RANDOM_SUFFIX.fullmatch(pod)
    if random is not None:
        owner = random.group(1)
        templated = _TEMPLATE_HASH.fullmatch(owner)
        if templated is not None:
            return _usable(templated.group(1))
        scheduled = _ORDINAL_OR_SCHEDULE.fullmatch(owner)
        return _usable(scheduled.group(1) if scheduled is not None else owner)
    numbered = _ORDINAL_OR_SCHEDULE.fullmatch(pod)
    return _usable(numbered.group(1) if numbered is not None else pod)


def in_kubernetes_pod(cgroup: str) -> bool:
    """Whether /proc/PID/cgroup puts the process in a Kubernetes pod: the kubelet keeps pods
    under "kubepods" (cgroupfs driver) or "kubepods.slice" (systemd driver), on every
    hierarchy, and a cgroup namespace only shortens the path before it."""
    for line in cgroup.splitlines():
        path = line.split(":", 2)[-1]
        if any(part.startswith("kubepods") for part in path.split("/")):
            return True
    return False


def hostname_in(environ: bytes) -> str | None:
    """HOSTNAME from a process's environment (/proc/PID/environ). Container runtimes set it to
    the pod's host name, which is the pod's name unless its spec says otherwise."""
    for entry in environ.split(b"\0"):
        if entry.startswith(b"HOSTNAME="):
            return _usable(entry[len(b"HOSTNAME=") :].decode("utf-8", "replace"))
    return None


def _usable(name: str) -> str | None:
    """A name as a process gave it, or None when it cannot be a service's name."""
    name = name.strip()
    if not name or len(name) > _LONGEST_NAME or not name.isprintable():
        return None
    return name


def load_service_map(section: object) -> ServiceMap:
    """Build a ``ServiceMap`` from the parsed YAML ``services:`` list."""
    if section is None:
        return ServiceMap()
    if not isinstance(section, list):
        raise ConfigFieldError(
            ("services",), f"expected a list of rules, got {type(section).__name__}"
        )
    rules = [_rule(item, ("services", i)) for i, item in enumerate(section)]
    return ServiceMap(tuple(rules))


def _rule(item: object, where: Location) -> ServiceRule:
    if not isinstance(item, Mapping):
        raise ConfigFieldError(where, "expected a mapping with name or name_from, comm, port, pid")
    unknown = sorted(set(map(str, item)) - _FIELDS)
    if unknown:
        raise ConfigFieldError(
            (*where, unknown[0]), f"unknown field (expected one of {', '.join(sorted(_FIELDS))})"
        )
    comm = item.get("comm")
    if comm is not None and (not isinstance(comm, str) or not 0 < len(comm) <= 15):
        raise ConfigFieldError((*where, "comm"), "a process name of 1 to 15 characters")
    port = _int(item.get("port"), (*where, "port"), 1, 65535)
    pid = _int(item.get("pid"), (*where, "pid"), 1, 2**22)
    name, name_from = item.get("name"), item.get("name_from")
    if name_from is not None:
        if name is not None:
            raise ConfigFieldError((*where, "name_from"), "set name or name_from, not both")
        if name_from not in NAME_SOURCES:
            raise ConfigFieldError(
                (*where, "name_from"),
                f"expected one of {', '.join(NAME_SOURCES)}, got {name_from!r}",
            )
        return ServiceRule(name=None, comm=comm, port=port, pid=pid, name_from=str(name_from))
    if not isinstance(name, str) or not name.strip():
        raise ConfigFieldError(
            (*where, "name"), "a non-empty service name (or name_from) is required"
        )
    if comm is None and port is None and pid is None:
        raise ConfigFieldError(where, "set at least one of comm, port, pid")
    return ServiceRule(name=name.strip(), comm=comm, port=port, pid=pid)


def _int(value: object, where: Location, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigFieldError(where, f"expected an integer from {low} to {high}")
    return value
