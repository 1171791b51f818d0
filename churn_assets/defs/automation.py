"""Automation conditions on assets (evaluated by the automation sensor in
sensors/automation.py): what rebuilds by itself when its inputs change."""

import dagster as dg

# rebuild once a parent changed and nothing upstream is running or missing: the dbt
# models follow new raw data, the drift report follows each feature build and champion
FOLLOW_UPSTREAM = dg.AutomationCondition.eager()
