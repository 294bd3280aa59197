"""No false 404 after create: intake's create response carries an upload grant, and evidence_storage accepts an upload
on it before it has heard submission.submitted; the event then confirms what the grant said."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from services.evidence_storage.models import KnownSubmission
from services.intake.api import create_app as create_intake_app
from services.intake.bootstrap import bootstrap as intake_bootstrap
from shared.contracts.intake import SubmissionSubmitted
from shared.grants import HEADER, GrantSigner, GrantVerifier, UploadGrant
from shared.settings import Settings
from tests.evidence_storage import media
from tests.helpers import wait_until
from tests.intake.support import admin_header, post


def _grant(world, submission_id: str, unit_id: str, **overrides) -> str:
    grant = UploadGrant(
        submission_id=submission_id,
        unit_id=unit_id,
        unit_path=f"/{unit_id}/",
        measure_code="M1",
        version=1,
        campaign_id=None,
    )
    return GrantSigner(world.ctx.settings).sign(grant, **overrides)


def _upload(world, submission_id: str, headers: dict):
    return world.client.post(
        f"/submissions/{submission_id}/evidence",
        params={"filename": "横幅.jpg"},
        content=media.photo(3, size=(48, 48)),
        headers={"Content-Type": "image/jpeg", **headers},
    )


def test_an_upload_with_the_grant_succeeds_before_the_event_and_the_event_confirms_it(make_world):
    world = make_world()
    unit_id, submission_id = world.unit(), str(uuid.uuid4())
    token = world.unit_token(unit_id)
    assert _upload(world, submission_id, token).status_code == 404  # unknown, and nothing vouches for it

    response = _upload(world, submission_id, {**token, HEADER: _grant(world, submission_id, unit_id)})
    assert response.status_code == 201, response.text
    world.publish(
        SubmissionSubmitted(
            submission_id=submission_id,
            unit_id=unit_id,
            unit_path=f"/{unit_id}/",
            measure_code="M1",
            version=1,
            kind="measure",
            title="宣传横幅",
        )
    )
    wait_until(lambda: world.events("evidence.stored"), what="evidence.stored")
    with world.ctx.db.session() as uow:
        known = uow.get(KnownSubmission, submission_id)
    assert (known.state, known.version, known.unit_path) == ("submitted", 1, f"/{unit_id}/")


def test_a_grant_for_another_submission_another_unit_or_expired_does_not_open_the_door(make_world):
    world = make_world()
    unit_id, other_unit, submission_id = world.unit(), world.unit("DS", "杜集区信访局"), str(uuid.uuid4())
    token = world.unit_token(unit_id)
    for grant in (
        _grant(world, str(uuid.uuid4()), unit_id),
        _grant(world, submission_id, unit_id, ttl_s=-120),
        _grant(world, submission_id, unit_id)[:-4] + "AAAA",
    ):
        assert _upload(world, submission_id, {**token, HEADER: grant}).status_code == 404
    # a valid grant for another unit's submission: the unit-subtree rule still holds
    assert (
        _upload(
            world,
            submission_id,
            {**world.unit_token(other_unit), HEADER: _grant(world, submission_id, unit_id)},
        ).status_code
        == 404
    )
    grant = _grant(world, submission_id, unit_id)
    assert world.client.get("/evidence/x", headers={"Authorization": f"Bearer {grant}"}).status_code == 401


def test_intake_hands_out_a_grant_for_a_handed_in_submission_only(tmp_path):
    settings = Settings(data_dir=tmp_path)
    ctx = intake_bootstrap(settings)
    try:
        with TestClient(create_intake_app(ctx)) as api:
            api.headers.update(admin_header(ctx))
            unit = api.post("/units", json={"code": "XS", "name": "相山区信访局", "level": "county"}).json()
            submitted = post(api, unit_id=unit["id"], measure_code="M1", title="专题会议").json()
            draft = post(api, unit_id=unit["id"], measure_code="M1", title="草稿", submit=False).json()
        grant = GrantVerifier(settings).verify(submitted["upload_grant"], submitted["id"])
        assert (grant.unit_path, grant.version, grant.measure_code) == (unit["unit_path"], 1, "M1")
        assert draft["upload_grant"] is None
    finally:
        ctx.db.dispose()
