"""Root causes by segment: a group whose accounts share a problem is flagged with its family;
one extreme account, a segment's own leading indicators, or a quiet group are not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnml.config import Config
from churnml.features.catalogue import by_name
from churnml.reports.segments import root_causes

CATALOGUE = by_name(Config().features)
ONBOARDING, ADOPTION = "onboarding_overdue", "active_users_30d"


def _book(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores and churn contributions of a book in two segments, channels and industries at
    random; adoption drives SMB's risk more than enterprise's (segments differ by design)."""
    rng = np.random.default_rng(seed)
    ids = [f"a{i}" for i in range(n)]
    segment = rng.choice(["smb", "enterprise"], n)
    scores = pd.DataFrame({
        "account_id": ids, "segment": segment, "arr": rng.lognormal(9, 1, n),
        "acquisition_channel": rng.choice(["inbound", "outbound", "partner"], n),
        "industry": rng.choice(["retail", "software", "media", "finance"], n),
        "churn_probability": rng.beta(2, 30, n),
    })  # fmt: skip
    scores["arr_at_risk"] = scores.arr * scores.churn_probability
    adoption = rng.normal(np.where(segment == "smb", 0.03, 0.005), 0.01)
    contributions = pd.DataFrame({"account_id": ids, "target": "churn",
                                  ADOPTION: adoption, ONBOARDING: rng.normal(0, 0.004, n)})
    return scores, contributions


def test_a_group_whose_accounts_share_a_problem_is_flagged_with_its_family() -> None:
    scores, contributions = _book()
    cell = ((scores.industry == "retail") & (scores.acquisition_channel == "partner")).to_numpy()
    contributions.loc[cell, ONBOARDING] += 0.03  # +3 points of risk from onboarding
    scores.loc[cell, "churn_probability"] += 0.03
    scores["arr_at_risk"] = scores.arr * scores.churn_probability
    out = root_causes(scores, contributions, None, CATALOGUE, min_accounts=20)
    flagged = out[out.flagged]
    planted = flagged[(flagged.industry == "retail") & (flagged.acquisition_channel == "partner")
                      & flagged.segment.isna()]  # fmt: skip
    assert len(planted) == 1
    assert planted.driver.iloc[0] == "onboarding"
    assert planted.driver_lift_pts.iloc[0] > 2.5 and planted.driver_share.iloc[0] > 0.8
    # every flagged group is the planted one or holds it (e.g. all of 'retail')
    assert ((flagged.industry == "retail") | (flagged.acquisition_channel == "partner")).all()


def test_without_a_shared_problem_nothing_is_flagged() -> None:
    """Segments' own indicators differ (adoption weighs more in SMB) and one account in a group
    has an extreme onboarding contribution: neither is a segment problem."""
    scores, contributions = _book(seed=1)
    one = scores.index[(scores.industry == "media") & (scores.acquisition_channel == "inbound")][0]
    contributions.loc[one, ONBOARDING] = 0.6
    out = root_causes(scores, contributions, None, CATALOGUE, min_accounts=20)
    assert len(out) > 20 and not out.flagged.any()
    smb = out[(out.segment == "smb") & out.acquisition_channel.isna() & out.industry.isna()]
    assert abs(smb.driver_lift_pts.iloc[0]) < 1e-9  # a segment is compared with itself


def test_small_groups_are_left_out() -> None:
    scores, contributions = _book(n=100)
    out = root_causes(scores, contributions, None, CATALOGUE, min_accounts=40)
    assert (out.accounts >= 40).all() and out.industry.isna().all()


def test_a_column_with_one_value_makes_no_groups() -> None:
    """A one-segment book: its segment would only repeat the whole book (and each channel)."""
    scores, contributions = _book(seed=2)
    scores["segment"] = "unsegmented"
    out = root_causes(scores, contributions, None, CATALOGUE, min_accounts=20)
    assert out.segment.isna().all()
    assert set(out.acquisition_channel.dropna()) == {"inbound", "outbound", "partner"}


def test_stated_reasons_are_set_beside_the_family_the_model_saw() -> None:
    from churnml.scoring.explain import stated_reasons

    logodds = pd.DataFrame({ONBOARDING: [0.9, 0.8, -0.1, 0.0], ADOPTION: [0.1, 0.2, 0.7, -0.2],
                            "days_to_renewal": [5.0, 5.0, 5.0, 5.0]})  # a clock: not a lever
    reasons = pd.Series(["too_expensive", "too_expensive", "low_usage", "bankruptcy"])
    assert stated_reasons(reasons, logodds, CATALOGUE) == {
        "bankruptcy": {"none": 1}, "low_usage": {"adoption": 1}, "too_expensive": {"onboarding": 2}}
