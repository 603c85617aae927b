"""The probe's exceptions, in one place.

ProbeError
├── ProbeUnavailable   eBPF cannot run here (not root, no BTF, no tracefs, no headers, no BCC);
│                      its message is one actionable line
├── ProbeAbiMismatch   a record does not have the layout ``bpf/http_event.h`` promises
├── ConfigFieldError   a field of the config file (routes, semantics, services) is invalid;
│                      ``location`` is its path, which the file's reader maps to a line
└── ReplayFormatError  a replay file line is not a ``bytewatch trace`` JSON object
"""

from __future__ import annotations


class ProbeError(Exception):
    """Base class of every error raised by ``probe``."""


class ProbeUnavailable(ProbeError):
    """eBPF cannot run on this machine or as this user; the message says what to do."""


class ProbeAbiMismatch(ProbeError):
    """A record from the kernel does not match the layout in ``bpf/http_event.h``."""


class ReplayFormatError(ProbeError):
    """A line of a replay file is not a valid exchange object."""


class ConfigFieldError(ProbeError):
    """A field of bytewatch's config file is invalid.

    ``location`` is the field path from the top of the file, e.g. ``("routes", "patterns",
    "payments", 2)``, so that the caller which read the file can map it to a line number.
    """

    def __init__(self, location: tuple[str | int, ...], reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"{format_location(location)}: {reason}")


def format_location(location: tuple[str | int, ...]) -> str:
    """``("routes", "patterns", "payments", 2)`` → ``routes.patterns.payments[2]``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text
