"""The project's own bookkeeping: one version number, every imported package declared, lock files in step."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from deploy import lockcheck
from shared.version import platform_version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
FIRST_PARTY = {"shared", "services", "deploy", "tests", "bench"}


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _declared(*extras: str) -> set[str]:
    project = PYPROJECT["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in extras:
        names |= {_name(r) for r in project["optional-dependencies"][extra]}
    return names


def _imported(*folders: str) -> dict[str, str]:
    """Top-level third-party modules imported anywhere under the folders, with one file importing each."""
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def _undeclared(imported: dict[str, str], declared: set[str]) -> list[str]:
    distributions = packages_distributions()
    missing = []
    for module, where in sorted(imported.items()):
        names = {_name(d) for d in distributions.get(module, [module])}
        if not names & declared:
            missing.append(f"{module} (imported in {where}; distribution {sorted(names)})")
    return missing


def test_the_apps_report_the_version_pyproject_declares():
    assert platform_version() == PYPROJECT["project"]["version"]


def test_every_package_the_code_imports_is_a_declared_runtime_dependency():
    assert (
        _undeclared(_imported("shared", "services"), _declared("otel", "ocr")) == []
    )  # otel: the optional tracing extra; ocr: the optional OCR engine (imported lazily, docs/ocr.md)


def test_every_package_the_tools_tests_and_benchmarks_import_is_declared_for_testing():
    # deploy/ also holds developer tools (local_stack runs moto and aiosmtpd): runtime plus test dependencies.
    assert _undeclared(_imported("deploy", "tests", "bench"), _declared("test", "ocr")) == []  # bench/ocr.py


def test_the_lock_files_were_compiled_from_the_declared_dependencies():
    for lock in ("requirements.lock", "requirements-dev.lock"):
        assert lockcheck.stale(ROOT / lock) is None, f"{lock} is stale: run `make lock`"


def test_the_lock_files_pin_every_package_with_hashes():
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / lock).read_text(encoding="utf-8")
        pins = re.findall(r"^([A-Za-z0-9._-]+)==\S+ \\$", text, re.M)
        assert pins, lock
        assert text.count("--hash=sha256:") >= len(pins)
        assert "campaign-evidence" not in {_name(p) for p in pins}
    runtime = {
        _name(p) for p in re.findall(r"^([A-Za-z0-9._-]+)==", (ROOT / "requirements.lock").read_text(), re.M)
    }
    assert _declared() <= runtime, _declared() - runtime
