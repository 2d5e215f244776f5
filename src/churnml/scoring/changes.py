"""What changed since a previous scoring run, and exactly why (`churnml score --previous DIR`).

Both dates are scored with today's models from today's data, so for each target:

    p_now − p_before = data part + model part
    data part  = p_now(x_now) − p_now(x_before) = Σ over features of c(x_now) − c(x_before)
    model part = p_now(x_before) − p_before, from the previous run's file

The data part splits exactly into per-feature deltas (same model, same base rate). The model part
is a new model's doing, or the earlier data restated (late rows). The two are not told apart: a
registry alias such as `@champion` names whichever version it points to.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnml.features.catalogue import Feature, family
from churnml.io import run_file
from churnml.scoring.reasons import (
    MIN_POINTS,
    Lang,
    by_column,
    date,
    format_value,
    largest,
    value_formatter,
)
from churnml.vocabulary import TARGETS, TIERS

CHANGE = pa.struct(
    [
        ("feature", pa.string()),
        ("before", pa.string()),
        ("after", pa.string()),
        ("points", pa.float64()),
        ("sentence", pa.string()),
    ]
)
_WORDS = {
    "en": {"churn": "Churn risk", "expansion": "Expansion propensity", "since": " since {}",
           "colon": ": ",
           "rose": " rose ", "fell": " fell ", "is": ": ", "arrow": " → ", "open": " (",
           "pts": " pts)", "model": "model change or restated data",
           "sep": "; ", "unit": " pts"},
    "ja": {"churn": "解約リスク", "expansion": "拡大の見込み", "since": "（{}から）", "colon": "：",
           "rose": " ",
           "fell": " ", "is": "：", "arrow": " → ", "open": "（", "pts": "pt）",
           "model": "モデル変更またはデータ修正", "sep": "；", "unit": "pt"},
}  # fmt: skip

BEFORE = (  # what compare() reads of the previous run's scores
    "account_id", "as_of", *(f"{t}_{c}" for t in TARGETS for c in ("probability", "tier")))

ALERTS = ("account_id", "account_name", "csm_owner", "segment", "arr", "churn_probability",
          "churn_change", "churn_tier_before", "churn_tier", "expansion_probability",
          "expansion_change", "arr_at_risk", "priority", "next_best_action", "play",
          "churn_change_text", "expansion_change_text")  # alerts.csv  # fmt: skip


def change_columns(target: str) -> list[tuple[str, pa.DataType]]:
    """The columns `--previous` fills for a target (null without it)."""
    return [
        (f"{target}_change", pa.float64()),  # probability now − before (points as a fraction)
        (f"{target}_change_model", pa.float64()),  # of which the model part
        (f"{target}_tier_before", pa.string()),
        (f"{target}_change_drivers", pa.list_(CHANGE)),
        (f"{target}_change_families", pa.string()),
        (f"{target}_change_text", pa.string()),
    ]


def compare(
    now: pd.DataFrame,
    then: pd.DataFrame,
    before: pd.DataFrame,
    contributions: tuple[pd.DataFrame, pd.DataFrame],
    values: tuple[pd.DataFrame, pd.DataFrame],
    catalogue: dict[str, Feature],
    lang: Lang,
    currency: str,
    since: dt.date | None = None,
) -> pd.DataFrame:
    """Change columns for `now`'s accounts (see the module docstring): `then` is the previous
    date scored with today's models, `before` the previous run's scores (of `since`, by default
    its first row's date); contributions and feature values are (now, then); money is shown in
    `currency`. Accounts new since, and targets without a model on either side, are left
    empty."""
    since = since or scored_as_of(before)
    ids = now.account_id
    prior = _aligned(before, ids)
    names = [c for c in contributions[0].columns if c not in ("account_id", "target")]
    codes, families = pd.factorize(
        np.asarray([family(catalogue[f]) if f in catalogue else "other" for f in names]))
    sides = tuple(_aligned(v, ids) for v in values)
    sides = (*sides, _moved(*sides, names))  # the feature values (now, then), where they moved
    matrices = [_matrix(c, names) for c in contributions]

    def columns(target: str) -> dict[str, object]:
        p = f"{target}_probability"
        if p not in prior or now[p].isna().all() or prior[p].isna().all():
            return {name: None for name, _ in change_columns(target)}
        rows = [_rows(m, c, target, ids) for m, c in zip(matrices, contributions, strict=True)]
        found, sums = _moves(rows, sides[2], np.eye(len(families))[codes])
        change = now[p].to_numpy() - prior[p].to_numpy()
        model_part = _aligned(then[["account_id", p]], ids)[p].to_numpy() - prior[p].to_numpy()
        drivers = _drivers(found, np.asarray(names), sides, catalogue, lang, currency)
        text = _text(target, change, drivers, model_part, since, lang)
        return {
            f"{target}_change": change,
            f"{target}_change_model": model_part,
            f"{target}_tier_before": prior[f"{target}_tier"].to_numpy(),
            f"{target}_change_drivers": pd.Series(pd.arrays.ArrowExtensionArray(drivers),
                                                  index=now.index),
            f"{target}_change_families": _strings(_families(sums, np.asarray(families)),
                                                  now.index),
            f"{target}_change_text": _strings(text, now.index),
        }

    out = pd.DataFrame({"previous_as_of": since}, index=now.index)
    for target in TARGETS:
        out = out.assign(**columns(target))
    return out


def scored_as_of(scores: pd.DataFrame) -> dt.date:
    """The day a run's scores are as of (one for the whole run: its first row's)."""
    return pd.Timestamp(scores.as_of.iloc[0]).date()


@dataclass(frozen=True)
class Since:
    """What a run written chunk by chunk compares each chunk with: `run`, a run of the previous
    date by today's models (its contributions and features.parquet: the previous run itself, or
    that date scored again) and its scores `then`; `before`, the previous run's scores (BEFORE);
    and the rise in churn risk that raises an alert (`alerts`)."""

    run: Path
    then: pd.DataFrame
    before: pd.DataFrame
    catalogue: dict[str, Feature]
    lang: Lang
    currency: str
    alert_points: float

    def compare(self, now: pd.DataFrame, now_run: Path) -> pd.DataFrame:
        """`compare` for `now` (scores of a chunk of accounts), whose contributions and
        features are in `now_run`: of each run, only the rows in the chunk's range of accounts
        are read."""
        ids = (now.account_id.min(), now.account_id.max())
        contributions, values = (
            tuple(_between(run / name, *ids) for run in (now_run, self.run))
            for name in ("contributions.parquet", "features.parquet"))  # fmt: skip
        then, before = (_within(scores, *ids) for scores in (self.then, self.before))
        return compare(now, then, before, contributions, values, self.catalogue, self.lang,
                       self.currency, scored_as_of(self.before))  # fmt: skip


def _between(path: Path, first: str, last: str) -> pd.DataFrame:
    """The rows of a run's file (a file, or a folder of parts) whose account_id is in [first,
    last]: row groups outside it are skipped."""
    rows = [("account_id", ">=", first), ("account_id", "<=", last)]
    return pq.read_table(path, filters=rows).to_pandas()


def _within(scores: pd.DataFrame, first: str, last: str) -> pd.DataFrame:
    """The rows of `scores` whose account_id is in [first, last] (the book's scores are
    aligned to a chunk's accounts faster from these)."""
    ids = scores.account_id
    return scores[(ids >= first) & (ids <= last)]


BLOCK_ROWS = 8192  # rows compared at a time: temporaries stay small and their memory is reused


def _rows(matrix: np.ndarray, contributions: pd.DataFrame, target: str,
          ids: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """A target's rows of `matrix` (`contributions` as numbers, a column per feature) as
    (matrix, positions): row `positions[i]` is account `ids[i]`'s, −1 where the file has no such
    account; positions None when the rows are the accounts in order (a view, not a copy)."""
    rows = np.flatnonzero((contributions.target == target).to_numpy())
    found = contributions.account_id.iloc[rows].reset_index(drop=True)
    if found.equals(ids.reset_index(drop=True)):
        if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
            return matrix[rows[0] : rows[-1] + 1], None
        return matrix, rows
    at = pd.Index(found).get_indexer(ids)
    return matrix, np.where(at < 0, -1, rows[np.maximum(at, 0)])


def _moves(sides: list[tuple[np.ndarray, np.ndarray | None]], moved: np.ndarray,
           families: np.ndarray, k: int = 3) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Block by block of rows, the contribution deltas (now − then): per account, the k that
    moved its probability most in the direction it moved (at least MIN_POINTS each) among the
    features whose value moved, as (rows, columns, points, offsets) for `_drivers`; and the
    deltas summed by family (`families`: feature × family, 0/1)."""
    n = len(moved)
    sums, counts, parts = np.empty((n, families.shape[1])), np.zeros(n, np.int64), []
    for start in range(0, n, BLOCK_ROWS):
        block = slice(start, start + BLOCK_ROWS)
        now, then = (_take(matrix, positions, block) for matrix, positions in sides)
        deltas = now - then
        np.copyto(deltas, 0.0, where=np.isnan(deltas))  # what one side lacks: no delta
        sums[block] = deltas @ families
        total = deltas.sum(axis=1, keepdims=True)
        sign = np.where(np.abs(total) >= MIN_POINTS, np.sign(total), 0.0)  # no move, no drivers
        rows, cols, _, offsets = largest(deltas * (sign * moved[block]), k, MIN_POINTS)
        parts.append((rows + start, cols, deltas[rows, cols]))
        counts[block] = np.diff(offsets)
    rows, cols, points = (np.concatenate([part[i] for part in parts]) for i in range(3))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return (rows, cols, points, offsets), sums


def _take(matrix: np.ndarray, positions: np.ndarray | None, block: slice) -> np.ndarray:
    """The block's rows of `matrix` (see `_rows`), missing at position −1."""
    if positions is None:  # rows made contiguous block by block (a frame's matrix is by column)
        return np.ascontiguousarray(matrix[block])
    positions = positions[block]
    if not len(matrix):
        return np.full((len(positions), matrix.shape[1]), np.nan)
    rows = matrix[np.maximum(positions, 0)]
    rows[positions < 0] = np.nan
    return rows


def _drivers(found: tuple[np.ndarray, ...], names: np.ndarray,
             sides: tuple[pd.DataFrame, pd.DataFrame, np.ndarray], catalogue: dict[str, Feature],
             lang: Lang, currency: str) -> pa.ListArray:  # fmt: skip
    """The drivers `_moves` found, as lists of CHANGE records: feature, values before and after
    as shown, points and sentence. (A feature whose value did not change can still move a
    little through its interactions with others: it counts in the totals and families, not as
    a driver.) Vectorised per feature, not per row."""
    now, then, _ = sides
    rows, cols, points, offsets = found
    groups, back = by_column(cols)
    parts = [_phrases(names[cols[at[0]]], then, now, rows[at], points[at], catalogue, lang,
                      currency) for at in groups]  # fmt: skip
    before, after, sentences = (
        pa.concat_arrays([part[i] for part in parts] or [pa.array([], pa.string())]).take(back)
        for i in range(3)
    )
    records = pa.StructArray.from_arrays(
        [pa.array(names, pa.string()).take(cols), before, after, pa.array(points, pa.float64()),
         sentences], fields=list(CHANGE),
    )  # fmt: skip
    return pa.ListArray.from_arrays(pa.array(offsets), records)


def _phrases(name: str, then: pd.DataFrame, now: pd.DataFrame, rows: np.ndarray,
             points: np.ndarray, catalogue: dict[str, Feature], lang: Lang,
             currency: str) -> tuple[pa.Array, pa.Array, pa.Array]:  # fmt: skip
    """Before and after as text, and the sentence, for one feature's changes:
    'Active users 30d fell 41 → 18 (+7.0 pts)'."""
    words, feature = _WORDS[lang], catalogue.get(name)
    old, new = (_column(frame, name, rows) for frame in (then, now))
    shown = [_shown(v, feature, lang, currency) for v in (old, new)]
    numeric = feature is not None and not feature.categorical and feature.unit != "flag"
    if numeric:  # a move too small for the usual format is shown with more digits
        same = pc.fill_null(pc.equal(shown[0], shown[1]), False).to_numpy(zero_copy_only=False)
        shown = _told_apart(shown, old, new, same, feature.unit)
        a, b = new.astype(float), old.astype(float)
        verb = np.where(a > b, 0, np.where(a < b, 1, 2))
    else:
        verb = np.full(len(rows), 2)
    verbs = pa.array([words["rose"], words["fell"], words["is"]]).take(verb)
    label = feature.label(lang) if feature else name
    sentence = pc.binary_join_element_wise(
        label, verbs, shown[0], words["arrow"], shown[1], words["open"], _points(points),
        words["pts"], "")  # fmt: skip
    return shown[0], shown[1], sentence


MAX_DIGITS = 6  # after the decimal mark, in a change's values (`_told_apart`)


def _told_apart(shown: list[pa.Array], old: np.ndarray, new: np.ndarray, where: np.ndarray,
                unit: str) -> list[pa.Array]:  # fmt: skip
    """Before and after as `shown`, with more digits where `where` holds (a move too small for
    the usual format): the fewest that tell the two apart (3.4% → 3.5%, 2.41% → 2.44%, 1.234×,
    12.35), up to MAX_DIGITS."""
    if not where.any():
        return shown
    pattern = {"share": "{:.%d%%}", "percentile": "{:.%d%%}", "ratio": "{:.%df}×"}.get(
        unit, "{:,.%df}")
    sides = [side[where] for side in (old, new)]
    texts: list[list[str]] = [[""] * int(where.sum()), [""] * int(where.sum())]
    left = np.arange(len(sides[0]))
    for digits in range(1, MAX_DIGITS + 1):
        fmt = pattern % digits
        pair = [[fmt.format(v) if v is not None and v == v else "–" for v in side[left]]
                for side in sides]  # fmt: skip
        for k, a, b in zip(left, *pair, strict=True):
            texts[0][k], texts[1][k] = a, b
        left = left[[a == b for a, b in zip(*pair, strict=True)]]
        if not len(left):
            break
    mask = pa.array(where)
    return [pc.replace_with_mask(s, mask, pa.array(t, pa.string()))
            for s, t in zip(shown, texts, strict=True)]


def _moved(now: pd.DataFrame, then: pd.DataFrame, names: list[str]) -> np.ndarray:
    """Where each feature's value differs between the two dates (missing on one side only
    counts; a feature one side lacks has no delta, so it never counts): a row per account, a
    column per name."""
    out = np.zeros((len(now), len(names)), dtype=bool, order="F")  # filled column by column
    for j, name in enumerate(names):
        if name in now and name in then:
            a, b = now[name].to_numpy(), then[name].to_numpy()
            gone, was = pd.isna(a), pd.isna(b)
            out[:, j] = np.where(gone | was, gone != was, a != b)
    return np.ascontiguousarray(out)


def _matrix(contributions: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The contributions of `names` as one float matrix (column-major): a view when they are
    the frame's last columns, as scoring lays them out, else a copy."""
    tail = contributions.iloc[:, contributions.shape[1] - len(names):]
    part = tail if list(tail.columns) == names else contributions.reindex(columns=names)
    return part.to_numpy(dtype=float)


def _column(frame: pd.DataFrame, name: str, rows: np.ndarray) -> np.ndarray:
    return frame[name].to_numpy()[rows] if name in frame else np.full(len(rows), None)


def _aligned(frame: pd.DataFrame, ids: pd.Series) -> pd.DataFrame:
    """`frame` (with an account_id column) indexed by account, in the order of `ids`."""
    frame = frame.set_index("account_id")
    return frame if frame.index.equals(pd.Index(ids)) else frame.reindex(ids)


def _shown(values: np.ndarray, feature: Feature | None, lang: Lang, currency: str) -> pa.Array:
    """Values as a CSM reads them: rounded as they are shown, then each distinct value formatted
    once (so a million jittered values cost a few hundred format calls)."""
    unit = feature.unit if feature else "category"
    if unit == "category" or (feature and feature.categorical):
        values = pd.Series(values, dtype=object)
    else:
        digits = {"share": 2, "percentile": 2, "ratio": 2, "flag": 0, "currency": 0,
                  "days": 0}.get(unit, 1)  # fmt: skip
        values = np.round(pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float), digits)
    codes, uniques = pd.factorize(values)
    show = value_formatter(unit, lang, currency)  # uniques are never missing
    text = [show(v if unit == "category" else float(v)) for v in uniques]
    text.append(format_value(None, unit, lang, currency))
    return pa.array(text, pa.string()).take(np.where(codes < 0, len(uniques), codes))


def _families(sums: np.ndarray, families: np.ndarray) -> pa.Array:
    """'adoption +8.0; support +3.0': the families that moved the probability (`sums`: account ×
    family, in points as fractions), largest first, at least MIN_POINTS."""
    rows, cols, _, offsets = largest(np.abs(sums), len(families), MIN_POINTS)
    items = _join(pa.array(families.astype(str)).take(cols), " ", _points(sums[rows, cols]))
    lists = pa.ListArray.from_arrays(pa.array(offsets), items)
    return pc.binary_join(lists, "; ")


def _text(target: str, change: np.ndarray, drivers: pa.ListArray, model_part: np.ndarray,
          since: dt.date, lang: Lang) -> pa.Array:  # fmt: skip
    """'Churn risk +12.0 pts since Jan 1, 2026: Active users 30d fell 41 → 18 (+7.0 pts); …',
    with the model part last when it counts; missing for accounts new since."""
    w = _WORDS[lang]
    head = _join(w[target] + " ", _points(change), w["unit"],
                 w["since"].format(date(since, lang, short=True)))  # fmt: skip
    sentences = pa.ListArray.from_arrays(drivers.offsets, drivers.values.field("sentence"))
    body = pc.binary_join(sentences, w["sep"])
    tail = _join(w["model"], w["open"], _points(model_part), w["pts"])
    counts = pa.array(np.abs(np.nan_to_num(model_part)) >= MIN_POINTS)
    has_body = pc.not_equal(body, "")
    body = pc.if_else(counts, pc.if_else(has_body, _join(body, w["sep"], tail), tail), body)
    text = pc.if_else(pc.not_equal(body, ""), _join(head, w["colon"], body), head)
    return text  # missing where the change is (new accounts)


def _points(values: np.ndarray) -> pa.Array:
    """Probability changes as signed points with one decimal (+7.0), each distinct one formatted
    once; missing stays missing. Less than 0.05 points either way is +0.0 (factorize takes -0.0
    for 0.0, so the sign would be that of whichever came first)."""
    codes, sizes = pd.factorize(np.round(np.asarray(values, float) * 100, 1) + 0.0)
    return pa.array([f"{v:+.1f}" for v in sizes], pa.string()).take(
        pa.array(codes, mask=codes < 0))  # fmt: skip


def _strings(text: pa.Array, index: pd.Index) -> pd.Series:
    """Arrow strings as pandas' string column, without a copy."""
    return pd.Series(text, dtype=pd.StringDtype("pyarrow", na_value=np.nan), index=index)


def _join(*parts: object) -> pa.Array:
    """Element-wise concatenation of string arrays and strings (missing if any part is)."""
    return pc.binary_join_element_wise(*parts, "")


def alerts(scores: pd.DataFrame, points: float) -> pd.DataFrame:
    """Accounts whose churn risk rose into a higher tier or by at least `points`, or whose
    expansion propensity rose into a higher tier, ranked by ARR at stake (priority); the columns
    of alerts.csv (ALERTS)."""
    up = [_rank(scores[f"{t}_tier"]) > _rank(scores[f"{t}_tier_before"]) for t in TARGETS]
    rose = scores.churn_change >= points
    found = scores.loc[up[0] | up[1] | rose, list(ALERTS)]
    return found.sort_values("priority", ascending=False, kind="stable")


def _rank(tiers: pd.Series) -> np.ndarray:
    """Tiers as numbers (high 3, medium 2, low 1; none is NaN, so never higher)."""
    at = pd.Index(TIERS).get_indexer(tiers)
    return np.where(at < 0, np.nan, len(TIERS) - at)


def read_previous(previous: Path, as_of: dt.date) -> pd.DataFrame:
    """The scores of an earlier run (`--previous`), which must be of an earlier date."""
    path = run_file(previous, "scores.parquet")
    if path is None:
        raise FileNotFoundError(f"--previous: no scores.parquet in {previous} (give an earlier "
                                "--out of churnml score)")  # fmt: skip
    before = pd.read_parquet(path, columns=list(BEFORE))
    since = scored_as_of(before) if len(before) else None
    if since is None or since >= as_of:
        raise ValueError(f"--previous: {path} was scored as of {since}; it must be before {as_of}")
    return before
