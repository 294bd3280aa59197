"""Keep the lock files in step with pyproject.toml: `stamp` them after compiling, `check` one before installing.

The stamp is a digest of the dependency declarations only (requires-python, dependencies, optional
dependencies), so editing comments or other tables in pyproject.toml does not make a lock stale, and
file times (which git does not keep) play no part. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

MARK = "# pyproject-dependencies-sha256: "
ROOT = Path(__file__).resolve().parent.parent


def dependencies_digest(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The digest of what pyproject.toml declares as dependencies."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    declared = {key: project.get(key) for key in ("requires-python", "dependencies", "optional-dependencies")}
    return hashlib.sha256(json.dumps(declared, sort_keys=True).encode("utf-8")).hexdigest()


def stamp(lock: Path) -> None:
    """Write the current digest into the lock file's header (replacing an older one)."""
    lines = [line for line in lock.read_text(encoding="utf-8").splitlines() if not line.startswith(MARK)]
    lock.write_text("\n".join([MARK + dependencies_digest(), *lines]) + "\n", encoding="utf-8")


def stale(lock: Path) -> str | None:
    """Why the lock file does not match pyproject.toml, or None when it does."""
    if not lock.exists():
        return f"{lock.name} is missing"
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.startswith(MARK):
            if line.removeprefix(MARK).strip() == dependencies_digest():
                return None
            return f"{lock.name} was compiled from other dependencies than pyproject.toml declares now"
    return f"{lock.name} has no '{MARK.strip()}' line"


def main(argv: list[str]) -> int:
    """`lockcheck.py stamp LOCK...` or `lockcheck.py check LOCK...`; check exits 1 with advice when stale."""
    if len(argv) < 2 or argv[0] not in {"stamp", "check"}:
        print("usage: python deploy/lockcheck.py stamp|check LOCKFILE...", file=sys.stderr)
        return 2
    locks = [Path(name) for name in argv[1:]]
    if argv[0] == "stamp":
        for lock in locks:
            stamp(lock)
        return 0
    problems = [problem for problem in map(stale, locks) if problem]
    for problem in problems:
        print(
            f"error: {problem}.\n"
            "  The lock files pin every dependency with hashes and are what CI and the image install.\n"
            "  Run `make lock` to regenerate them from pyproject.toml, then commit requirements*.lock.",
            file=sys.stderr,
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
