# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Explore a churnml world
# Tables, churn and expansion rates, and cohorts by segment and tenure. Point `CHURNML_DATA` at
# a folder of tables (default: the world `make demo` generates).

# %%
import os

import pandas as pd

from churnml.config import load_config
from churnml.data.sources import connect, load_tables
from churnml.data.validate import validate
from churnml.features.truth import labels_with_truth

DATA = os.environ.get("CHURNML_DATA", "../demo_output/world")
cfg = load_config(os.environ.get("CHURNML_CONFIG"))

# %% [markdown]
# ## Tables
# Row counts and the findings of the data contract.

# %%
report = validate(DATA, cfg.data)
print(report)
pd.Series(report.row_counts, name="rows").to_frame()

# %%
tables = load_tables(DATA, cfg.data, connect())
accounts = tables["accounts"].execute()
accounts.groupby("segment").size().rename("accounts").to_frame()

# %% [markdown]
# ## Rates by segment
# Every active account-month with its 90-day labels (and, for a generated world, the
# simulator's own probabilities).

# %%
snapshots = labels_with_truth(DATA, cfg)
by_segment = snapshots.groupby("segment").agg(
    account_months=("account_id", "size"),
    churn_90d=("churn_90d", "mean"),
    involuntary_90d=("involuntary_churn_90d", "mean"),
    expansion_90d=("expansion_90d", "mean"),
    arr=("arr", "median"),
)
by_segment

# %% [markdown]
# ## Cohorts by tenure
# Churn is highest early in the life of an account (onboarding) and around renewals.

# %%
tenure = snapshots.merge(accounts[["account_id", "signup_date"]], on="account_id")
months = (tenure.as_of - pd.to_datetime(tenure.signup_date)).dt.days // 30
tenure["tenure_band"] = pd.cut(months, [0, 3, 6, 12, 24, 120], right=False)
tenure.pivot_table(index="tenure_band", columns="segment", values="churn_90d", observed=True)
