"""The play library: for each account, the play to run, its owner role and its due date.

Plays are declared in YAML (`plays.yaml`, shipped in the package, or `scoring.plays` in the
config): the first play whose conditions match an account's next best action, main driver and
segment wins (see the YAML's header). Matching is done per play over the whole book, not per row.
"""

from __future__ import annotations

import fnmatch
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from churnml.config import ConfigError
from churnml.vocabulary import ACTIONS

LIBRARY = resources.files("churnml.scoring") / "plays.yaml"  # shipped in the wheel


class Text(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    text: str


class Play(BaseModel):
    """One play: when it applies, who runs it, by when, and what it says (en/ja)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    actions: list[str]
    features: list[str] = Field(default_factory=list)  # shell-style patterns
    family: str | None = None
    segments: list[str] = Field(default_factory=list)
    owner: str
    segment_owner: dict[str, str] = Field(default_factory=dict)
    due_days: int = Field(ge=0)
    before_renewal: int = Field(0, ge=0)
    en: Text
    ja: Text


class Library(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owners: dict[str, dict[str, str]]
    plays: list[Play]

    @model_validator(mode="after")
    def _complete(self) -> Library:
        for play in self.plays:
            unknown = set(play.actions) - set(ACTIONS)
            roles = {play.owner, *play.segment_owner.values()} - set(self.owners)
            if unknown or roles:
                raise ValueError(f"play {play.id!r}: unknown action(s) {sorted(unknown)} or "
                                 f"owner role(s) {sorted(roles)}")  # fmt: skip
        uncovered = set(ACTIONS) - {a for p in self.plays if _catch_all(p) for a in p.actions}
        if uncovered:
            raise ValueError(f"no catch-all play (without conditions) for {sorted(uncovered)}")
        return self

    def play(self, play_id: str) -> Play | None:
        return next((p for p in self.plays if p.id == play_id), None)


def _catch_all(play: Play) -> bool:
    return not (play.features or play.family or play.segments)


@cache
def load_library(path: str | None = None) -> Library:
    """The play library at `path`, or the one shipped with churnml."""
    source = Path(path) if path else LIBRARY
    try:
        return Library.model_validate(yaml.safe_load(source.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ConfigError(f"scoring.plays: no play library at {path}") from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"play library {source}: {exc}") from None


def choose_plays(
    library: Library,
    action: pd.Series,
    driver: pd.Series,
    family: pd.Series,
    segment: pd.Series,
    as_of: pd.Series,
    renewal: pd.Series,
) -> pd.DataFrame:
    """play, play_owner and play_due per account: the first matching play; due `due_days` after
    as_of and no later than `before_renewal` days before the renewal (never before as_of)."""
    chosen = np.full(len(action), -1)
    names = driver.dropna().unique()  # the few distinct drivers, matched per play
    for i, play in enumerate(library.plays):
        hit = (chosen < 0) & action.isin(play.actions).to_numpy()
        if play.features:
            known = [d for d in names if any(fnmatch.fnmatch(d, p) for p in play.features)]
            hit &= driver.isin(known).to_numpy()
        if play.family:
            hit &= (family == play.family).to_numpy()
        if play.segments:
            hit &= segment.isin(play.segments).to_numpy()
        chosen[hit] = i
    # one entry per play and a last one for "no play" (index -1: an account without action)
    column = lambda f: np.array([*map(f, library.plays), None], object)[chosen]  # noqa: E731
    owner = column(lambda p: p.owner)
    for i, play in enumerate(library.plays):
        for seg, role in play.segment_owner.items():
            owner[(chosen == i) & (segment == seg).to_numpy()] = role
    start = pd.Series(pd.to_datetime(as_of).to_numpy(), index=action.index)
    days = lambda f: pd.to_timedelta(column(f).astype(float), unit="D")  # noqa: E731
    due = start + days(lambda p: p.due_days)
    latest = pd.Series(pd.to_datetime(renewal).to_numpy(), index=action.index)
    latest = latest - days(lambda p: p.before_renewal)
    due = due.where(~(latest < due), latest).where(lambda d: d >= start, start)
    return pd.DataFrame(
        {"play": column(lambda p: p.id), "play_owner": owner,
         "play_due": due.dt.date.where(chosen >= 0, None)},
        index=action.index,
    )  # fmt: skip
