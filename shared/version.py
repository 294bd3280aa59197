"""The platform's one version number, read from the installed package's metadata (set in pyproject.toml)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "campaign-evidence"


@cache
def platform_version() -> str:
    """The version pyproject.toml declares, as installed; '0+unknown' when run from an uninstalled tree."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"
