"""Alembic environment of the intake service: its models are what autogenerate compares (shared/migrations.py)."""

from services.intake import identity  # noqa: F401  (users, api_keys and audit_log live on the same metadata)
from services.intake.models import Base
from shared.migrations import run_environment

run_environment(Base.metadata)
