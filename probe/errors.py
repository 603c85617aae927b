"""The probe's exceptions, in one place.

ProbeError
├── ProbeUnavailable   eBPF cannot run here (not root, no BTF, no tracefs, no headers, no BCC);
│                      its message is one actionable line
├── ProbeAbiMismatch   a record does not have the layout ``bpf/http_event.h`` promises
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
