"""Run one benchmark on an older commit and on this tree at the same time, so both meet the same machine.

    python -m bench.side_by_side COMMIT -- bench.pipeline --n 300
    python -m bench.side_by_side COMMIT -- bench.submit --mode embedded --rates 30 --seconds 15

On a machine whose speed drifts from one minute to the next (a shared virtual machine), two runs one after the
other differ by more than a 10 % change; run at once, old and new share every slow moment. The older commit is
checked out into a temporary git worktree (removed afterwards); the benchmark module runs from each tree with
that tree first on PYTHONPATH and the same interpreter (this virtualenv), each writing its full output, which
is printed at the end under the tree's name. Compare each tree's own processes: servers both runs use
(PostgreSQL, RabbitMQ) are counted in both outputs. Each benchmark makes its own database and queues, so the two
runs do not share data; with both on the machine, each runs at about half its speed alone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import run_cli

ROOT = Path(__file__).resolve().parent.parent


def _run(tree: Path, module_args: list[str], output: Path) -> subprocess.Popen:
    """Start the benchmark from one tree, its output into a file."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")])),
    }
    with output.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *module_args], cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def main(argv: list[str] | None = None) -> int:
    """Check out COMMIT beside this tree, run the benchmark in both at once, print both outputs."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.side_by_side", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("commit", help="the older commit to compare this tree with")
    parser.add_argument("benchmark", nargs=argparse.REMAINDER, help="-- then the module and its arguments")
    args = parser.parse_args(argv)
    module_args = args.benchmark[1:] if args.benchmark[:1] == ["--"] else args.benchmark
    if not module_args or not module_args[0].startswith("bench."):
        parser.error("name a benchmark module after --, e.g. -- bench.pipeline --n 300")
    with tempfile.TemporaryDirectory(prefix="bench-side-") as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(
            ["git", "worktree", "add", "--quiet", "--detach", str(old_tree), args.commit],
            cwd=ROOT,
            check=True,
        )
        try:
            outputs = {f"{args.commit} (older)": Path(tmp) / "old.txt", "this tree": Path(tmp) / "new.txt"}
            trees = dict(zip(outputs, (old_tree, ROOT), strict=True))
            print(f"running {' '.join(module_args)} in both trees at once …", flush=True)
            runs = {name: _run(trees[name], module_args, path) for name, path in outputs.items()}
            codes = {name: run.wait() for name, run in runs.items()}
            for name, path in outputs.items():
                print(f"\n======== {name}: exit {codes[name]} ========")
                print(path.read_text(errors="replace"))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=False)
    return max(codes.values(), default=0)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
