"""Alembic environment of the review service: its models are what autogenerate compares (shared/migrations.py)."""

from services.review.models import Base
from shared.migrations import run_environment

run_environment(Base.metadata)
