"""Review keeps the unit path of each item current, so the subtree rule follows a unit that moves."""

from __future__ import annotations

from services.review import handlers
from services.review.bootstrap import bootstrap
from services.review.models import ReviewItem
from shared.auth import UNIT, Principal, can_see_unit
from shared.events import Envelope
from shared.settings import Settings


def test_a_moved_unit_takes_its_review_items_along(tmp_path):
    ctx = bootstrap(Settings(data_dir=tmp_path))
    try:
        submitted = Envelope(
            type="submission.submitted",
            producer="intake",
            payload={
                "submission_id": "s1",
                "unit_id": "v",
                "measure_code": "M1",
                "title": "专题会议",
                "version": 1,
                "unit_path": "/c/d/v/",
            },
        )
        moved = Envelope(
            type="unit.registered",
            producer="intake",
            payload={
                "unit_id": "v",
                "code": "V",
                "name": "村",
                "level": "village",
                "parent_id": "e",
                "unit_path": "/c/e/v/",
            },
        )
        with ctx.db.transaction() as uow:
            handlers.enqueue_submission(submitted, uow=uow, ctx=ctx)
        for _ in range(2):  # redelivery changes nothing
            with ctx.db.transaction() as uow:
                handlers.project_unit(moved, uow=uow, ctx=ctx)
        with ctx.db.session() as uow:
            path = uow.get(ReviewItem, "s1").unit_path
        assert path == "/c/e/v/"
        old_parent = Principal(id="d", name="d", role=UNIT, unit_id="d", unit_path="/c/d/")
        new_parent = Principal(id="e", name="e", role=UNIT, unit_id="e", unit_path="/c/e/")
        assert not can_see_unit(old_parent, path) and can_see_unit(new_parent, path)
    finally:
        ctx.db.dispose()
