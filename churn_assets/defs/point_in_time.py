"""The point-in-time contract as a blocking asset check on training_examples."""

import dagster as dg

from churn_assets.resources import WarehouseResource
from warehouse.point_in_time import check_training_examples

SAMPLE_SIZE = 200


@dg.asset_check(
    asset=dg.AssetKey(["training_examples"]),
    name="point_in_time_recomputation",
    blocking=True,
    description=(
        "Samples training examples and recomputes features and labels from the raw tables "
        "with the point-in-time rule applied literally; any mismatch (leakage or a feature "
        "bug) or an example whose label window is still open fails."
    ),
)
def point_in_time_recomputation(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    settings = warehouse.settings()
    report = check_training_examples(warehouse.warehouse(), settings, sample_size=SAMPLE_SIZE)
    mismatches = report.mismatches
    return dg.AssetCheckResult(
        passed=report.passed,
        description=(
            f"{report.sampled} sampled examples match the raw-data recomputation"
            if report.passed
            else f"{len(mismatches)} mismatching values, {report.open_windows} open label windows"
        ),
        metadata={
            "sampled_examples": report.sampled,
            "mismatches": len(mismatches),
            "open_label_windows": report.open_windows,
            "first_mismatches": dg.MetadataValue.md(
                f"```\n{mismatches.head(20).to_string(index=False)}\n```"
                if len(mismatches)
                else "none"
            ),
        },
    )
