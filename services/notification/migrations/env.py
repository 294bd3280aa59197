"""Alembic environment of the notification service: its models are what autogenerate compares (shared/migrations.py)."""

from services.notification.models import Base
from shared.migrations import run_environment

run_environment(Base.metadata)
