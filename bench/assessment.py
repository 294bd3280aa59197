"""Assessment and circular benchmark: the Huaibei rubric over a campaign of many units.

    python -m bench.assessment [--units 2000] [--runs 10] [--postgres] [--seed 1]

Opens a review service of its own (SQLite in a temporary folder, or with --postgres a fresh
PostgreSQL database, dropped afterwards), publishes the Huaibei campaign to it through the same
handler the bus calls, then inserts dated facts directly: per unit a liaison time, 7 measure
submissions with one or two versions and their decisions (most approved with a score, some returned
then approved, some rejected), a summary report, an inspection for one unit in ten and a supervision
for one in twenty. Timed:

  - the assessment as of the end of the campaign (load the facts, score, rank), over --runs runs;
  - the same as of an earlier date (fewer facts count);
  - one circular: snapshot, SHA-256, .docx and .xlsx written to a folder blob store;

with the process's peak RSS and the circular files' sizes.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from bench.common import percentile, print_table, run_cli

HUAIBEI = Path(__file__).resolve().parents[1] / "deploy" / "campaigns" / "huaibei-2020.yaml"
MEASURES = [f"M{n}" for n in range(1, 8)]
START = datetime(2020, 3, 9, 2, tzinfo=UTC)
END = datetime(2020, 4, 10, 2, tzinfo=UTC)


def _facts(campaign_id: str, units: int, rng: random.Random) -> list:
    """Rows for `units` units with their versions, decisions, inspections and supervisions."""
    from services.review.models import (
        Inspection,
        ReviewDecision,
        ReviewUnit,
        ReviewVersion,
        Supervision,
        SupervisionChange,
    )

    rows: list = []
    for n in range(units):
        unit_id = str(uuid.uuid4())
        level = "county" if n % 4 == 0 else "member"
        rows.append(
            ReviewUnit(
                unit_id=unit_id,
                campaign_id=campaign_id,
                code=f"U{n:05d}",
                name=f"基准单位{n}",
                level=level,
                unit_path=f"/root/{unit_id}/",
                participates=True,
                liaison_designated_at=START + timedelta(hours=rng.randint(0, 120)),
            )
        )
        for code in MEASURES + ["summary"]:
            submission_id = str(uuid.uuid4())
            kind = "summary_report" if code == "summary" else "measure"
            submitted = START + timedelta(hours=rng.randint(24, 600))
            outcome = rng.random()
            versions = 2 if outcome < 0.15 else 1
            for version in range(1, versions + 1):
                at = submitted + timedelta(days=2 * (version - 1))
                rows.append(
                    ReviewVersion(
                        submission_id=submission_id,
                        version=version,
                        unit_id=unit_id,
                        campaign_id=campaign_id,
                        measure_code=code,
                        kind=kind,
                        submitted_at=at,
                    )
                )
                decision = (
                    "returned" if version < versions else ("rejected" if outcome > 0.95 else "approved")
                )
                rows.append(
                    ReviewDecision(
                        submission_id=submission_id,
                        unit_id=unit_id,
                        campaign_id=campaign_id,
                        measure_code=code,
                        kind=kind,
                        version=version,
                        decision=decision,
                        score=rng.choice([None, 100, 90, 80]) if decision == "approved" else None,
                        comment="基准",
                        reviewer="bench",
                        decided_at=at + timedelta(hours=20),
                    )
                )
        if n % 10 == 0:
            asked = rng.randint(5, 20)
            rows.append(
                Inspection(
                    id=str(uuid.uuid4()),
                    campaign_id=campaign_id,
                    unit_id=unit_id,
                    method="on_site",
                    inspected_on=date(2020, 3, 25),
                    inspector="bench",
                    measures_verified=MEASURES[: rng.randint(3, 7)],
                    residents_asked=asked,
                    residents_aware=rng.randint(0, asked),
                    residents_able=rng.randint(0, asked),
                    staff_tested=3,
                    staff_proficient=rng.randint(0, 3),
                    findings="",
                    problems=[],
                    criteria={},
                    score=float(rng.randint(10, 30)),
                    recorded_at=datetime(2020, 3, 25, 8, tzinfo=UTC),
                )
            )
        if n % 20 == 0:
            supervision_id = str(uuid.uuid4())
            opened = datetime(2020, 3, 28, 2, tzinfo=UTC)
            rows.append(
                Supervision(
                    id=supervision_id,
                    campaign_id=campaign_id,
                    unit_id=unit_id,
                    rule="manual",
                    level="yellow",
                    method="phone",
                    reason="进度滞后",
                    state="open",
                    opened_by="bench",
                    opened_at=opened,
                    rectify_by=opened + timedelta(days=5),
                    escalations=0,
                )
            )
            rows.append(
                SupervisionChange(
                    supervision_id=supervision_id,
                    unit_id=unit_id,
                    action="opened",
                    level="yellow",
                    method="phone",
                    actor="bench",
                    note="",
                    at=opened,
                )
            )
    return rows


def _timed(runs: int, work) -> list[float]:
    work()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> int:
    """Build the campaign, time the assessment and one circular, print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--postgres", action="store_true", help="use a fresh PostgreSQL database (TEST_POSTGRES_URL)"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from services.intake.campaigns import published_payload
    from services.intake.definition import parse_definition
    from services.review import handlers
    from services.review.assessment import scoring as assessment
    from services.review.bootstrap import bootstrap
    from services.review.circulars import use_cases as circulars
    from shared.auth import ADMIN, Principal
    from shared.blobs.folder import FolderBlobStore
    from shared.clock import FixedClock
    from shared.contracts import make_event
    from shared.settings import Settings

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-assessment-")))
        url = None
        if args.postgres:
            from tests.services import fresh_postgres_database

            url = stack.enter_context(fresh_postgres_database())
        settings = Settings(data_dir=work, **({"database_url": url} if url else {}))
        ctx = bootstrap(
            settings, clock=FixedClock(END + timedelta(days=10)), blobs=FolderBlobStore(work / "blobs")
        )
        stack.callback(ctx.db.dispose)
        definition = parse_definition(HUAIBEI.read_text(encoding="utf-8"))
        campaign = SimpleNamespace(
            id=str(uuid.uuid4()), code=definition.code, version=1, definition_sha256="0" * 64
        )
        with ctx.db.transaction() as uow:
            handlers.project_campaign(
                make_event(published_payload(campaign, definition), producer="intake"), uow=uow, ctx=ctx
            )
        started = time.perf_counter()
        rows = _facts(campaign.id, args.units, random.Random(args.seed))
        for chunk in range(0, len(rows), 5000):
            with ctx.db.transaction() as uow:
                uow.add_all(rows[chunk : chunk + 5000])
            print(
                f"  loaded {min(chunk + 5000, len(rows)):,} / {len(rows):,} facts",
                file=sys.stderr,
                flush=True,
            )
        load_s = time.perf_counter() - started
        del rows

        def assess(moment: datetime):
            def run():
                with ctx.db.session() as uow:
                    return assessment.compute(uow, campaign.id, moment)

            return run

        full = _timed(args.runs, assess(END))
        early = _timed(args.runs, assess(datetime(2020, 3, 20, tzinfo=UTC)))
        result = assess(END)()
        admin = Principal(id="bench", name="基准", role=ADMIN)
        started = time.perf_counter()
        row = circulars.create(
            ctx, campaign_id=campaign.id, period="2020-Q2", as_of=END.isoformat(), principal=admin
        )
        circular_ms = (time.perf_counter() - started) * 1000
        sizes = {
            kind: ctx.blobs.stat(key).size
            for kind, key in (("snapshot", row.snapshot_key), ("docx", row.docx_key), ("xlsx", row.xlsx_key))
        }

    store = "PostgreSQL" if args.postgres else "SQLite"
    lines = sum(len(u.lines) for u in result.units) if hasattr(result, "units") else 0
    print_table(
        f"assessment of {args.units:,} units on {store} ({lines:,} score lines; facts loaded in {load_s:.1f} s)",
        ["what", "p50 ms", "p95 ms", "runs"],
        [
            [
                "as of the campaign's end",
                f"{percentile(full, 50):.0f}",
                f"{percentile(full, 95):.0f}",
                args.runs,
            ],
            [
                "as of 2020-03-20 (fewer facts)",
                f"{percentile(early, 50):.0f}",
                f"{percentile(early, 95):.0f}",
                args.runs,
            ],
        ],
    )
    print_table(
        "one circular (snapshot + .docx + .xlsx)",
        ["ms", "snapshot KiB", "docx KiB", "xlsx KiB", "peak RSS MiB"],
        [
            [
                f"{circular_ms:.0f}",
                f"{sizes['snapshot'] / 1024:.0f}",
                f"{sizes['docx'] / 1024:.0f}",
                f"{sizes['xlsx'] / 1024:.0f}",
                f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}",
            ]
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
