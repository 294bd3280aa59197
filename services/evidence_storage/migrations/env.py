"""Alembic environment of the evidence_storage service: its models are what autogenerate compares (shared/migrations.py)."""

from services.evidence_storage.models import Base
from shared.migrations import run_environment

run_environment(Base.metadata)
