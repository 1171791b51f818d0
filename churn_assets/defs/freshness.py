"""Freshness policies in one place: how old raw data, feature tables, the online sync
and the champion may grow before Dagster warns and then fails their freshness (in the
UI), and before `churn status` says so."""

import datetime as dt

import dagster as dg

# raw batches land and features are rebuilt at least every couple of days
RAW_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(days=7), warn_window=dt.timedelta(days=2)
)
FEATURE_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(days=7), warn_window=dt.timedelta(days=2)
)
# serving reads these vectors: as fresh as the feature tables they copy
ONLINE_FRESHNESS = FEATURE_FRESHNESS
# retrained at least monthly (the retraining sensor also treats a champion older than
# CHURN_CHAMPION_MAX_AGE_DAYS as an incident)
CHAMPION_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(days=30), warn_window=dt.timedelta(days=21)
)
