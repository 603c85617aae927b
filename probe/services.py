"""Which service an exchange belongs to: a configurable mapping, defaulting to the process name.

Configuration (the ``services:`` section of bytewatch's config file), first match wins::

    services:
      - name: payments
        comm: node          # process name, as in /proc/PID/comm
        port: 8080          # the local port the process serves on (server exchanges only)
      - name: legacy-billing
        pid: 4242

A rule matches when every field it sets matches. A port rule never matches a client exchange:
a client's local port is ephemeral and says nothing about who is calling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from probe.errors import ConfigFieldError

_FIELDS = {"name", "comm", "port", "pid"}
Location = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ServiceRule:
    name: str
    comm: str | None = None
    port: int | None = None
    pid: int | None = None

    def matches(self, comm: str, port: int | None, pid: int) -> bool:
        if self.comm is not None and self.comm != comm:
            return False
        if self.port is not None and self.port != port:
            return False
        return self.pid is None or self.pid == pid


@dataclass(frozen=True, slots=True)
class ServiceMap:
    rules: tuple[ServiceRule, ...] = ()

    def resolve(self, comm: str, port: int | None, pid: int) -> str:
        """``port`` is the serving port for server exchanges and None for client exchanges."""
        for rule in self.rules:
            if rule.matches(comm, port, pid):
                return rule.name
        return comm


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
        raise ConfigFieldError(where, "expected a mapping with name and comm/port/pid")
    unknown = sorted(set(map(str, item)) - _FIELDS)
    if unknown:
        raise ConfigFieldError(
            (*where, unknown[0]), f"unknown field (expected one of {', '.join(sorted(_FIELDS))})"
        )
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigFieldError((*where, "name"), "a non-empty service name is required")
    comm = item.get("comm")
    if comm is not None and (not isinstance(comm, str) or not 0 < len(comm) <= 15):
        raise ConfigFieldError((*where, "comm"), "a process name of 1 to 15 characters")
    port = _int(item.get("port"), (*where, "port"), 1, 65535)
    pid = _int(item.get("pid"), (*where, "pid"), 1, 2**22)
    if comm is None and port is None and pid is None:
        raise ConfigFieldError(where, "set at least one of comm, port, pid")
    return ServiceRule(name=name.strip(), comm=comm, port=port, pid=pid)


def _int(value: object, where: Location, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigFieldError(where, f"expected an integer from {low} to {high}")
    return value
