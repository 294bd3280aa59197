"""Bounded integer types for every API parameter and body field, so nothing out of range reaches a database.

SQLite and PostgreSQL integers stop at 2^63-1 (PostgreSQL `integer` at 2^31-1); an unbounded `int`
lets `?offset=9223372036854775808` through to the driver, which answers OverflowError (a 500). These
types give a 422 instead and show their limits in each OpenAPI. Use them instead of a bare `int`.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le
from fastapi import Query

MAX_INT32 = 2**31 - 1  # fits every integer column on every database we run on
MAX_OFFSET = 10_000_000  # far beyond any list the platform holds, well inside every integer type
MAX_BYTES = 2**53  # a byte count (file size, chunk offset): exact in JSON numbers everywhere
MIN_YEAR, MAX_YEAR = 2000, 2100  # the campaign years the platform accepts (periods, as_of, held_on)

# Query parameters of list routes.
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="跳过前若干条 · rows to skip")]
Limit = Annotated[int, Query(ge=1, le=1000, description="最多返回条数 · at most this many rows")]
LargeLimit = Annotated[int, Query(ge=1, le=10_000, description="最多返回条数 · at most this many rows")]

# Path parameters and body fields.
Version = Annotated[int, Ge(1), Le(MAX_INT32)]  # a definition or submission version
Count = Annotated[int, Ge(0), Le(MAX_INT32)]  # a number of things (people asked, rows, ...)
PositiveCount = Annotated[int, Ge(1), Le(MAX_INT32)]
ByteCount = Annotated[int, Ge(0), Le(MAX_BYTES)]
Year = Annotated[int, Ge(MIN_YEAR), Le(MAX_YEAR)]
