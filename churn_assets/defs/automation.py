"""Automation conditions on assets (evaluated by the automation sensor in
sensors/automation.py): what rebuilds by itself when its inputs change."""

import os

import dagster as dg

# rebuild once a parent changed and nothing upstream is running or missing: the dbt
# models follow new raw data, the drift report follows each feature build and champion
FOLLOW_UPSTREAM = dg.AutomationCondition.eager()

# The prediction log has no upstream asset to follow: it is drained on a cron
# (CHURN_DRAIN_CRON, every 15 minutes by default), and what reads it follows eagerly.
DRAIN_CRON = os.environ.get("CHURN_DRAIN_CRON") or "*/15 * * * *"
ON_DRAIN_CRON = dg.AutomationCondition.on_cron(DRAIN_CRON, cron_timezone="UTC")
