"""The data contract: which tables churnml reads, their columns, types and keys.

This is the single declaration that loading, validation, the synthetic world and the feature
pipeline all read. Column names here are the contract's own; a config maps a user's names onto them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["id", "text", "date", "timestamp", "float", "int"]


# Dates, timestamps and numbers stored as text the way a spreadsheet writes them. A column that
# does not read as ISO 8601 (or a plain number) is read in its configured format, else in the
# one of its kind's that every value of a sample fits (`churnml.data.sources.text_formats`).
_CLOCKS = (" %H:%M:%S", " %H:%M", " %I:%M:%S %p", " %I:%M %p", "")
TIME_FORMATS = tuple(  # strptime codes: day first, month first, year first (and Japanese)
    day + clock
    for day in (*(f"%{a}{sep}%{b}{sep}%{y}" for a, b in ("dm", "md") for sep in "./-"
                  for y in "Yy"), "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日")
    for clock in _CLOCKS
)  # fmt: skip
_GROUP = "[. \u00a0\u202f]"  # thousands: a point or a space (French: a narrow no-break one)
CURRENCY = "([A-Z]{1,2}\\$|[$€£¥₩₹]|円|[A-Z]{3})"  # a symbol or an ISO code: US$, €, 円, EUR


def _amount(number: str) -> str:
    """The pattern of a number, with a currency before or after it (at most one space between)."""
    space = "[ \u00a0\u202f]?"
    return rf"^[+-]?({CURRENCY}{space})?{number}({space}{CURRENCY})?$"


NUMBER_FORMATS = {  # an example, as written → the pattern every value fits (spaces stripped)
    "1.234,5": _amount(rf"(\d{{1,3}}({_GROUP}\d{{3}})+|\d+)(,\d+)?"),
    "1,234.5": _amount(r"(\d{1,3}(,\d{3})+|\d+)(\.\d+)?"),
}


def unwritten(fmt: str) -> tuple[str, str]:
    """How a number of a format (of NUMBER_FORMATS) is read: the pattern of what to drop (all but
    digits, signs and its decimal mark), and its decimal mark (to read as '.')."""
    mark = fmt[-2]
    return rf"[^0-9+\-{re.escape(mark)}]", mark


@dataclass(frozen=True)
class Column:
    """One column: its contract name, kind, and whether a table must carry it."""

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = True
    default: str | None = None  # every row's value when the table has no such column
    fill: str | None = None  # the value of rows that have none (validation warns how many)
    instead: str | None = None  # a column that may stand in for a required one (see `as_arr`)


UNSEGMENTED = "unsegmented"  # the segment of an account that has none
BOOK = "all"  # not a segment: the whole book, where metrics are given by segment


@dataclass(frozen=True)
class Table:
    """One input table: columns, unique key, and the time column that places each row in time."""

    name: str
    columns: tuple[Column, ...]
    required: bool = False
    key: tuple[str, ...] = ()
    time_column: str | None = None

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _id(name: str) -> Column:
    return Column(name, "id", nullable=False)


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "accounts",
            (
                _id("account_id"),
                Column("segment", "text", required=False, default=UNSEGMENTED,
                       fill=UNSEGMENTED),  # one segment: the column may be left out
                Column("signup_date", "date", nullable=False),
                Column("account_name", "text", required=False),
                Column("industry", "text", required=False),
                Column("region", "text", required=False),
                Column("csm_owner", "text", required=False),
                Column("acquisition_channel", "text", required=False),
                Column("employees", "int", required=False),
            ),
            required=True,
            key=("account_id",),
            time_column="signup_date",
        ),
        Table(
            "subscriptions",
            (
                _id("account_id"),
                Column("product", "text", required=False, nullable=False,
                       default="product"),  # one product: the column may be left out
                Column("start_date", "date", nullable=False),
                Column("end_date", "date"),
                Column("arr", "float", nullable=False, instead="mrr"),
                Column("mrr", "float", required=False),  # monthly, as billing exports: ARR 12×
                Column("currency", "text", required=False),  # one book: several need rates
                Column("plan", "text", required=False),
                Column("seats", "int", required=False),
                Column("canceled_at", "date", required=False),
                Column("cancel_reason", "text", required=False),
            ),
            required=True,
            time_column="start_date",
        ),
        Table(
            "usage_events",
            (
                _id("account_id"),
                # null: an event of no user (counted, not as a user); none in any row (or no
                # column: usage kept by account), the features that count users are left out
                Column("user_id", "id", required=False),
                Column("ts", "timestamp", nullable=False),
                Column("event_type", "text", nullable=False),
                Column("quantity", "float", required=False),
            ),
            required=True,
            time_column="ts",
        ),
        Table(
            "onboarding_milestones",
            (
                _id("account_id"),
                Column("milestone", "text", nullable=False),
                Column("completed_at", "timestamp"),
                Column("due_date", "date", required=False),
            ),
            key=("account_id", "milestone"),
            time_column="completed_at",
        ),
        Table(
            "support_tickets",
            (
                _id("account_id"),
                _id("ticket_id"),
                Column("created_at", "timestamp", nullable=False),
                Column("priority", "text", nullable=False),
                Column("resolved_at", "timestamp", required=False),
                Column("category", "text", required=False),
                Column("csat", "float", required=False),
            ),
            key=("ticket_id",),
            time_column="created_at",
        ),
        Table(
            "nps_responses",
            (
                _id("account_id"),
                Column("submitted_at", "timestamp", nullable=False),
                Column("score", "int", nullable=False),
            ),
            time_column="submitted_at",
        ),
        Table(
            "contacts",
            (
                _id("account_id"),
                _id("contact_id"),
                Column("role", "text", nullable=False),
                Column("start_date", "date", nullable=False),
                Column("end_date", "date", required=False),
            ),
            key=("contact_id", "role"),
            time_column="start_date",
        ),
        Table(
            "cs_touchpoints",
            (
                _id("account_id"),
                Column("ts", "timestamp", nullable=False),
                Column("kind", "text", nullable=False),
            ),
            time_column="ts",
        ),
    )
}

REQUIRED_TABLES = [name for name, t in TABLES.items() if t.required]
CONTACT_ROLES = ("champion", "exec_sponsor", "admin", "user")
