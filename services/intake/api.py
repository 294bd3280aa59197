"""Intake HTTP API: a thin router over the use cases. Every read goes through services/intake/queries.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal
from urllib.parse import quote

import anyio
import anyio.from_thread
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic_core import to_json

from services.intake import campaigns, coverage, identity, materials, queries, schemas, submissions, units
from services.intake.auditing import Actor
from services.intake.auth_api import install_identity
from services.intake.definition import MAX_DEFINITION_BYTES
from services.intake.models import Campaign, CampaignChange, CampaignVersion, ReferenceMaterial, Unit
from shared.auth import ADMIN, INSPECTOR, REVIEWER, UNIT, Principal, require, scope_of
from shared.bounds import LargeLimit, Limit, Offset, Version
from shared.grants import GrantSigner, UploadGrant
from shared.health import install_health
from shared.http import ApiError, not_found
from shared.observe import NATIVE_TELEMETRY_OFF, observe
from shared.ops import ops_router
from shared.runtime import ServiceContext
from shared.version import platform_version

RAW_BODY = {
    "requestBody": {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "required": True,
    }
}
DEFINITION_BODY = {
    "requestBody": {
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
        "required": True,
    }
}


# Who may call what (docs/security.md); a unit is further confined to its subtree through scope_of(principal).
ANYONE = Depends(require())
STAFF = Depends(require(ADMIN, REVIEWER, INSPECTOR))
OFFICE = Depends(require(ADMIN))
WRITERS = Depends(require(ADMIN, UNIT))


def create_app(ctx: ServiceContext) -> FastAPI:
    """The intake service's FastAPI application."""
    app = FastAPI(
        telemetry=NATIVE_TELEMETRY_OFF,
        title="intake · 报送受理",
        description="活动定义、单位与联络员、报送材料、覆盖情况",
        version=platform_version(),
    )
    # FastAPI tries routes in order, twice per request (match, then handle): the busiest come first
    app.include_router(_submission_routes(ctx))
    app.include_router(_unit_routes(ctx))
    install_identity(
        app, ctx
    )  # token verification, /auth/*, /users, API keys, /audit-log (services/intake/auth_api.py)
    observe(app, ctx)  # request ids in logs, access lines, HTTP metrics, /metrics (shared/observe.py)
    app.include_router(ops_router(ctx, identity.AUDIT))  # /ops: parking lot, outbox errors, lag (admins)
    app.include_router(_campaign_routes(ctx))
    install_health(app, ctx)
    return app


# ---------------------------------------------------------------- campaigns


def _campaign_routes(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["campaigns"])

    @router.post(
        "/campaigns",
        status_code=201,
        response_model=schemas.CampaignLoaded,
        openapi_extra=DEFINITION_BODY,
        responses={200: {"description": "the same definition was loaded before: nothing changed"}},
    )
    async def load_campaign(request: Request, principal: Principal = OFFICE):
        """Load a campaign definition (YAML or JSON body): creates the campaign, or publishes a new version
        when the content changed; the same content again changes nothing (200)."""
        text = await _read_text(request, MAX_DEFINITION_BYTES)
        content_type = request.headers.get("content-type", "")
        fmt = "json" if "json" in content_type else "yaml" if "yaml" in content_type else None
        result = await anyio.to_thread.run_sync(
            lambda: campaigns.load_definition(text, fmt=fmt, actor=principal.name, ctx=ctx)
        )
        body = schemas.CampaignLoaded(**{**vars(result), "message": result.message})
        return JSONResponse(
            body.model_dump(mode="json"), status_code=200 if result.outcome == "unchanged" else 201
        )

    @router.get("/campaigns", response_model=list[schemas.CampaignRead])
    def list_campaigns(principal: Principal = ANYONE) -> list[dict]:
        """Every campaign (without the full definition)."""
        with ctx.db.session() as uow:
            return [_campaign_view(c) for c in queries.list_campaigns(uow)]

    @router.get("/campaigns/{campaign_ref}", response_model=schemas.CampaignRead)
    def get_campaign(campaign_ref: str, principal: Principal = ANYONE) -> dict:
        """One campaign (by id or code) with its current normalised definition."""
        with ctx.db.session() as uow:
            campaign = _campaign(uow, campaign_ref)
            definition = queries.published_definition(uow, campaign.id).model_dump(mode="json")
            return _campaign_view(campaign, _redacted(uow, definition, campaign.id, scope_of(principal)))

    @router.get("/campaigns/{campaign_ref}/versions", response_model=list[schemas.CampaignVersionRead])
    def list_versions(campaign_ref: str, principal: Principal = ANYONE) -> list[schemas.CampaignVersionRead]:
        """Every published version of the campaign's definition, oldest first."""
        with ctx.db.session() as uow:
            campaign = _campaign(uow, campaign_ref)
            return [
                schemas.CampaignVersionRead(
                    version=r.version,
                    sha256=r.sha256,
                    source_format=r.source_format,
                    created_at=r.created_at,
                    created_by=r.created_by,
                )
                for r in queries.campaign_versions(uow, campaign.id)
            ]

    @router.get("/campaigns/{campaign_ref}/versions/{version}", response_model=schemas.CampaignVersionRead)
    def get_version(
        campaign_ref: str, version: Version, principal: Principal = ANYONE
    ) -> schemas.CampaignVersionRead:
        """One version with the definition text exactly as it was loaded (staff only: for a unit it is omitted)."""
        with ctx.db.session() as uow:
            campaign = _campaign(uow, campaign_ref)
            row = uow.get(CampaignVersion, (campaign.id, version))
        if row is None:
            raise not_found("活动版本", "campaign version", f"{campaign_ref} v{version}")
        shown = schemas.CampaignVersionRead.model_validate(row)
        # The text as loaded names every unit's liaison: a unit gets the redacted definition from GET /campaigns/{ref}.
        return shown if scope_of(principal) is None else shown.model_copy(update={"source_text": None})

    @router.get("/campaigns/{campaign_ref}/changes", response_model=list[schemas.CampaignChangeRead])
    def list_changes(campaign_ref: str, principal: Principal = STAFF) -> list[CampaignChange]:
        """The audit trail of the campaign: versions published and materials attached, oldest first."""
        with ctx.db.session() as uow:
            campaign = _campaign(uow, campaign_ref)
            return queries.campaign_changes(uow, campaign.id)

    @router.get(
        "/campaigns/{campaign_ref}/coverage", response_model=schemas.CoverageRead | schemas.CoverageCompact
    )
    def get_coverage(
        campaign_ref: str,
        unit_id: str | None = Query(None, description="only this unit's subtree"),
        format: Literal["full", "compact"] = Query(
            "full", description="compact: one array per unit, cells as letters"
        ),
        principal: Principal = ANYONE,
    ) -> Response:
        """Units x measures with each cell's state and colour, topics and liaison per unit (see colour_rule);
        `format=compact` answers a CoverageCompact instead, about a tenth of the size, for large campaigns."""
        body = coverage.coverage(
            campaign_ref, unit_id=unit_id, ctx=ctx, scope=scope_of(principal), shape=format
        )
        # Plain dicts the use case already shaped: serialised directly instead of re-validated cell by cell.
        return Response(to_json(body), media_type="application/json")

    @router.get("/campaigns/{campaign_ref}/coverage/rollup", response_model=schemas.CoverageRollup)
    def get_coverage_rollup(
        campaign_ref: str,
        unit_id: str | None = Query(None, description="only this unit's subtree"),
        principal: Principal = ANYONE,
    ) -> Response:
        """Cells by state and colour, liaisons and summary reports added up per unit level and per district."""
        body = coverage.rollup(campaign_ref, unit_id=unit_id, ctx=ctx, scope=scope_of(principal))
        return Response(to_json(body), media_type="application/json")

    @router.get("/campaigns/{campaign_ref}/units", response_model=list[schemas.UnitRead])
    def list_campaign_units(
        campaign_ref: str,
        subtree_of: str | None = Query(None, description="a unit id: only its subtree"),
        include_inactive: bool = False,
        limit: LargeLimit = 1000,
        offset: Offset = 0,
        principal: Principal = ANYONE,
    ) -> list[Unit]:
        """The campaign's unit tree, parents before children."""
        with ctx.db.session() as uow:
            campaign = _campaign(uow, campaign_ref)
            scope = scope_of(principal)
            return queries.list_units(
                uow,
                campaign_id=campaign.id,
                subtree=_subtree(uow, subtree_of, scope),
                scope=scope,
                include_inactive=include_inactive,
                limit=limit,
                offset=offset,
            )

    @router.get("/campaigns/{campaign_ref}/materials", response_model=list[schemas.MaterialRead])
    def list_materials(campaign_ref: str, principal: Principal = ANYONE) -> list[dict]:
        """The campaign's reference materials; every unit may list and download them."""
        return [_material_view(m) for m in materials.list_materials(campaign_ref, ctx=ctx)]

    @router.put(
        "/campaigns/{campaign_ref}/materials/{code}",
        response_model=schemas.MaterialRead,
        openapi_extra=RAW_BODY,
    )
    async def put_material(
        campaign_ref: str,
        code: str,
        request: Request,
        filename: str = Query(..., max_length=1000),
        title: str | None = Query(None, min_length=1, max_length=200),
        description: str | None = Query(None, max_length=5000),
        principal: Principal = OFFICE,
    ):
        """Attach (or replace) a reference material from the raw body; the same file again changes nothing (200)."""
        reader = _pull_reader(request)
        material, outcome = await anyio.to_thread.run_sync(
            lambda: materials.attach_material(
                campaign_ref,
                code,
                reader,
                filename=filename,
                title=title,
                description=description,
                actor=principal.name,
                ctx=ctx,
            )
        )
        return JSONResponse(
            schemas.MaterialRead(**_material_view(material)).model_dump(mode="json"),
            status_code=200 if outcome == "unchanged" else 201,
        )

    @router.get("/campaigns/{campaign_ref}/materials/{code}/content")
    def download_material(campaign_ref: str, code: str, principal: Principal = ANYONE) -> StreamingResponse:
        """Download a reference material."""
        material, stream = materials.open_material(campaign_ref, code, ctx=ctx)
        return StreamingResponse(
            stream,
            media_type=material.media_type,
            headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(material.filename or material.code)}",
                "Content-Length": str(material.size),
                "X-Content-SHA256": material.sha256 or "",
                "X-Content-Type-Options": "nosniff",
            },
        )

    return router


def _campaign(uow, ref: str) -> Campaign:
    campaign = queries.campaign_by_ref(uow, ref)
    if campaign is None:
        raise not_found("活动", "campaign", ref)
    return campaign


def _redacted(uow, definition: dict, campaign_id: str, scope: str | None) -> dict:
    """The definition as a unit may see it: liaison contact data only for units in its own subtree."""
    if scope is None:
        return definition
    own = {
        unit.code
        for unit in queries.list_units(
            uow, scope=scope, campaign_id=campaign_id, include_inactive=True, limit=100_000, offset=0
        )
    }
    units = [
        unit if unit.get("code") in own else {**unit, "liaison": None} for unit in definition.get("units", [])
    ]
    return {**definition, "units": units}


def _campaign_view(campaign: Campaign, definition: dict | None = None) -> dict:
    fields = schemas.CampaignRead.model_fields
    return {
        **{name: getattr(campaign, name) for name in fields if name != "definition"},
        "definition": definition,
    }


def _material_view(material: ReferenceMaterial) -> dict:
    uploaded = bool(material.object_key)
    return {
        "code": material.code,
        "title": material.title,
        "description": material.description,
        "declared": material.declared,
        "uploaded": uploaded,
        "filename": material.filename,
        "media_type": material.media_type,
        "size": material.size,
        "sha256": material.sha256,
        "uploaded_at": material.uploaded_at,
        "download_path": campaigns.material_path(material.campaign_id, material.code) if uploaded else None,
    }


async def _read_text(request: Request, limit: int) -> str:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(
            400, "not_utf8", "定义文件须为 UTF-8 编码", "the definition must be UTF-8 text"
        ) from None


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"内容超过大小上限（{limit} 字节）", f"body exceeds {limit} bytes")


class _PullReader:
    """A blocking file-like reader over a request body, pulled chunk by chunk from a worker thread."""

    def __init__(self, next_chunk: Callable[[], bytes]) -> None:
        self._next, self._buffer, self._done = next_chunk, b"", False

    def read(self, n: int = -1) -> bytes:
        while not self._done and (n < 0 or len(self._buffer) < n):
            chunk = self._next()
            if not chunk:
                self._done = True
            self._buffer += chunk
        if n < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data


def _pull_reader(request: Request) -> _PullReader:
    chunks = request.stream().__aiter__()

    async def next_chunk() -> bytes:
        try:
            return await chunks.__anext__()
        except StopAsyncIteration:
            return b""

    return _PullReader(lambda: anyio.from_thread.run(next_chunk))


def _subtree(uow, unit_id: str | None, scope: str | None) -> str | None:
    if not unit_id:
        return None
    unit = queries.get_unit(uow, unit_id, scope=scope)
    if unit is None:
        raise not_found("单位", "unit", unit_id)
    return unit.unit_path


# ---------------------------------------------------------------- units


def _unit_routes(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["units"])

    @router.post("/units", status_code=201, response_model=schemas.UnitRead)
    def create_unit(body: schemas.UnitCreate, request: Request, principal: Principal = WRITERS) -> Unit:
        """Register a unit (under a parent in a campaign's tree, or on its own) with its liaison if known."""
        return units.register_unit(
            body, ctx=ctx, scope=scope_of(principal), actor=Actor.of(principal, request)
        )

    @router.get("/units", response_model=list[schemas.UnitRead])
    def list_units(
        campaign_id: str | None = None,
        subtree_of: str | None = Query(None, description="a unit id: only its subtree"),
        include_inactive: bool = False,
        limit: Limit = 100,
        offset: Offset = 0,
        principal: Principal = ANYONE,
    ) -> list[Unit]:
        """List units, parents before children."""
        with ctx.db.session() as uow:
            scope = scope_of(principal)
            return queries.list_units(
                uow,
                scope=scope,
                campaign_id=campaign_id,
                subtree=_subtree(uow, subtree_of, scope),
                include_inactive=include_inactive,
                limit=limit,
                offset=offset,
            )

    @router.get("/units/{unit_id}", response_model=schemas.UnitRead)
    def get_unit(unit_id: str, principal: Principal = ANYONE) -> Unit:
        """One unit."""
        with ctx.db.session() as uow:
            unit = queries.get_unit(uow, unit_id, scope=scope_of(principal))
        if unit is None:
            raise not_found("单位", "unit", unit_id)
        return unit

    @router.put("/units/{unit_id}/liaison", response_model=schemas.UnitRead)
    def put_liaison(
        unit_id: str, body: schemas.LiaisonIn, request: Request, principal: Principal = WRITERS
    ) -> Unit:
        """Designate the unit's liaison (history kept; after the liaison deadline it is recorded as late)."""
        return units.designate_liaison(
            unit_id, body, ctx=ctx, scope=scope_of(principal), actor=Actor.of(principal, request)
        )

    @router.get("/units/{unit_id}/liaisons", response_model=list[schemas.LiaisonRead])
    def liaison_history(unit_id: str, principal: Principal = ANYONE) -> list:
        """Every liaison the unit has designated, oldest first."""
        with ctx.db.session() as uow:
            if queries.get_unit(uow, unit_id, scope=scope_of(principal)) is None:
                raise not_found("单位", "unit", unit_id)
            return queries.liaison_history(uow, unit_id)

    return router


# ---------------------------------------------------------------- submissions


def _submission_routes(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["submissions"])

    signer = _grant_signer(ctx)

    def view(submission) -> schemas.SubmissionRead:
        with ctx.db.session() as uow:
            shown = submissions.present(uow, [submission])[0]
        return with_grant(shown)

    def with_grant(shown: schemas.SubmissionRead) -> schemas.SubmissionRead:
        if signer is None or shown.state != "submitted":
            return shown
        grant = UploadGrant(
            submission_id=shown.id,
            unit_id=shown.unit_id,
            unit_path=shown.unit_path,
            measure_code=shown.measure_code,
            version=shown.version,
            campaign_id=shown.campaign_id,
        )
        return shown.model_copy(update={"upload_grant": signer.sign(grant)})

    @router.post("/submissions", status_code=201, response_model=schemas.SubmissionRead)
    def create_submission(
        body: schemas.SubmissionCreate, request: Request, principal: Principal = WRITERS
    ) -> schemas.SubmissionRead:
        """Create a submission and hand it in for review (or keep it as a draft with "submit": false)."""
        created, definition = submissions.create_submission(
            body, ctx=ctx, scope=scope_of(principal), actor=Actor.of(principal, request)
        )
        return with_grant(submissions.shown(created, [], definition))  # a new submission has no evidence yet

    @router.get("/submissions", response_model=list[schemas.SubmissionRead])
    def list_submissions(
        unit_id: str | None = None,
        campaign_id: str | None = None,
        subtree_of: str | None = Query(None, description="a unit id: submissions of its whole subtree"),
        kind: schemas.SubmissionKind | None = None,
        measure_code: str | None = None,
        state: schemas.SubmissionState | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
        principal: Principal = ANYONE,
    ) -> list[schemas.SubmissionRead]:
        """List submissions, newest first."""
        with ctx.db.session() as uow:
            scope = scope_of(principal)
            rows = queries.list_submissions(
                uow,
                scope=scope,
                unit_id=unit_id,
                campaign_id=campaign_id,
                subtree=_subtree(uow, subtree_of, scope),
                kind=kind,
                measure_code=measure_code,
                state=state,
                limit=limit,
                offset=offset,
            )
            return submissions.present(uow, rows)

    @router.get("/submissions/{submission_id}", response_model=schemas.SubmissionRead)
    def get_submission(submission_id: str, principal: Principal = ANYONE) -> schemas.SubmissionRead:
        """One submission with its state and evidence."""
        with ctx.db.session() as uow:
            submission = queries.get_submission(uow, submission_id, scope=scope_of(principal))
            if submission is None:
                raise not_found("报送材料", "submission", submission_id)
            return submissions.present(uow, [submission])[0]

    @router.patch("/submissions/{submission_id}", response_model=schemas.SubmissionRead)
    def edit_submission(
        submission_id: str, body: schemas.SubmissionFields, request: Request, principal: Principal = WRITERS
    ) -> schemas.SubmissionRead:
        """Change a draft."""
        return view(
            submissions.edit_draft(
                submission_id, body, ctx=ctx, scope=scope_of(principal), actor=Actor.of(principal, request)
            )
        )

    @router.post("/submissions/{submission_id}/submit", response_model=schemas.SubmissionRead)
    def submit_submission(
        submission_id: str, request: Request, principal: Principal = WRITERS
    ) -> schemas.SubmissionRead:
        """Hand in a draft for review."""
        return view(
            submissions.submit_draft(
                submission_id, ctx=ctx, scope=scope_of(principal), actor=Actor.of(principal, request)
            )
        )

    @router.post("/submissions/{submission_id}/withdraw", response_model=schemas.SubmissionRead)
    def withdraw_submission(
        submission_id: str, request: Request, principal: Principal = WRITERS
    ) -> schemas.SubmissionRead:
        """Take back a submission that is not yet reviewed."""
        return view(
            submissions.withdraw(
                submission_id, ctx=ctx, scope=scope_of(principal), actor=Actor.of(principal, request)
            )
        )

    @router.post("/submissions/{submission_id}/resubmit", response_model=schemas.SubmissionRead)
    def resubmit_submission(
        submission_id: str, body: schemas.SubmissionFields, request: Request, principal: Principal = WRITERS
    ) -> schemas.SubmissionRead:
        """Hand in a returned submission again, with changes, as a new version."""
        return view(
            submissions.resubmit(
                submission_id, body, ctx=ctx, scope=scope_of(principal), actor=Actor.of(principal, request)
            )
        )

    @router.get("/submissions/{submission_id}/versions", response_model=list[schemas.SubmissionVersionRead])
    def list_submission_versions(submission_id: str, principal: Principal = ANYONE) -> list:
        """Every version handed in, oldest first, with how each ended."""
        with ctx.db.session() as uow:
            if queries.get_submission(uow, submission_id, scope=scope_of(principal)) is None:
                raise not_found("报送材料", "submission", submission_id)
            return queries.submission_versions(uow, submission_id)

    return router


def _grant_signer(ctx: ServiceContext) -> GrantSigner | None:
    """The upload-grant signer, when this process holds the platform's private key."""
    try:
        return GrantSigner(ctx.settings)
    except ValueError:
        return None
