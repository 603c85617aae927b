"""What a test may skip: outside CI a missing tool skips it with the reason; with ``CI=true`` the
same gap fails it, because CI's machine is set up by scripts/setup.sh --dev and a skip there
would hide a broken setup behind a green run."""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(message: str) -> NoReturn:
    """Skip with ``message``, or fail with it under CI."""
    if IN_CI:
        pytest.fail(f"CI=true, so this may not be skipped: {message}")
    pytest.skip(message)


def require_binary(name: str, hint: str) -> str:
    """The path of ``name`` on PATH; skips or fails (see the module) when it is missing."""
    found = shutil.which(name)
    if found is None:
        skip_or_fail(f"needs {name} ({hint})")
    return found


def built_extension(name: str) -> ModuleType:
    """One of the C extensions setup.py builds (``probe._head``); skips or fails (see the
    module) where it was not built."""
    try:
        return importlib.import_module(name)
    except ImportError:
        skip_or_fail(f"{name} is not built here (BYTEWATCH_PURE_PYTHON was set)")
