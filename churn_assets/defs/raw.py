"""Raw tables filled from the landing zone, each guarded by a blocking pandera check.

A landing file that breaks the contract is set aside by ingestion and the run goes on
with the good files; the asset says so in its log, its metadata and a WARN check
(`landing_files_accepted`), which does not block anything downstream."""

from collections.abc import Iterator

import dagster as dg

from churn_assets.defs.freshness import RAW_FRESHNESS
from churn_assets.resources import WarehouseResource
from warehouse.connection import Warehouse
from warehouse.contract import (
    RAW_COLUMNS,
    RAW_SCHEMA,
    TABLES,
    UNIQUE_KEYS,
    ContractError,
    normalize,
    table_schema,
    validate,
)
from warehouse.ingestion import Ingestor

GROUP = "raw"
CHECK_BATCH_ROWS = 1_000_000
ACCEPTED_CHECK = "landing_files_accepted"


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([RAW_SCHEMA, table])


def _column_schema(table: str) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, sql_type.lower()) for name, sql_type in RAW_COLUMNS[table]]
    )


def _table_rows(warehouse: Warehouse, table: str) -> int:
    return int(warehouse.query_df(f"SELECT count(*) AS n FROM {RAW_SCHEMA}.{table}")["n"].iloc[0])


def _ingest(
    context: dg.AssetExecutionContext, resource: WarehouseResource, table: str
) -> tuple[dict, dg.AssetCheckResult]:
    """Ingest table's new landing files -> (materialization metadata, the WARN check
    result saying whether any file was set aside)."""
    settings = resource.settings()
    warehouse = Warehouse(settings)
    report = Ingestor(warehouse, settings.landing_dir, progress=context.log.info).ingest(table)
    context.log.info(
        f"{table}: {len(report.files)} new file(s), {report.rows:,} rows; "
        f"{report.skipped_files} already ingested; {len(report.rejected)} rejected"
    )
    rejected = dg.MetadataValue.md(
        "\n".join(f"- `{r.name}`: {r.reason} (report: `{r.report}`)" for r in report.rejected)
        or "none"
    )
    if report.rejected:
        context.log.warning(report.rejected_line(settings.landing_dir))
    check = dg.AssetCheckResult(
        asset_key=raw_key(table),
        check_name=ACCEPTED_CHECK,
        passed=not report.rejected,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            report.rejected_line(settings.landing_dir)
            if report.rejected
            else f"every new {table} file met the contract"
        ),
        metadata={"rejected_files": len(report.rejected), "rejected": rejected},
    )
    metadata = {
        "new_files": len(report.files),
        "new_rows": report.rows,
        "already_ingested_files": report.skipped_files,
        "rejected_files": len(report.rejected),
        "rejected": rejected,
        "latest_file": report.files[-1] if report.files else "",
        "warehouse": warehouse.describe(),
    }
    return metadata, check


def _accepted_check_spec(table: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        ACCEPTED_CHECK,
        asset=raw_key(table),
        description=(
            f"WARN when new landing files broke the raw contract and were moved to "
            f"landing/_rejected/{table}/ with a report; the good files were ingested."
        ),
    )


def _materialize_result(warehouse: Warehouse, table: str, metadata: dict) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        asset_key=raw_key(table),
        metadata={
            **metadata,
            "dagster/row_count": _table_rows(warehouse, table),
            "dagster/column_schema": _column_schema(table),
        },
    )


def _raw_spec(table: str, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        raw_key(table),
        description=description,
        group_name=GROUP,
        kinds={"duckdb", "postgres", "parquet"},
        freshness_policy=RAW_FRESHNESS,
        owners=["team:data-platform"],
    )


@dg.multi_asset(
    specs=[
        _raw_spec("customers", "Customers (customer_id, signup_at) from landing/customers."),
        _raw_spec("customer_attributes", "Every extra column of a customers file, stored long."),
    ],
    check_specs=[_accepted_check_spec("customers")],
    name="raw_customers",
)
def raw_customers(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    metadata, check = _ingest(context, warehouse, "customers")
    wh = warehouse.warehouse()
    yield _materialize_result(wh, "customers", metadata)
    yield _materialize_result(wh, "customer_attributes", {})
    yield check


def _single_table_asset(table: str, description: str) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=[_raw_spec(table, description)],
        check_specs=[_accepted_check_spec(table)],
        name=f"raw_{table}",
    )
    def _asset(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        metadata, check = _ingest(context, warehouse, table)
        yield _materialize_result(warehouse.warehouse(), table, metadata)
        yield check

    return _asset


raw_subscriptions = _single_table_asset(
    "subscriptions",
    "Subscription periods from landing/subscriptions (upserted on customer_id, started_at).",
)
raw_events = _single_table_asset("events", "Customer events from landing/events.")
raw_labels = _single_table_asset(
    "labels", "Churn labels shipped with the data, from landing/labels."
)


def _known_customers(warehouse: Warehouse) -> list[str]:
    return warehouse.query_df(f"SELECT customer_id FROM {RAW_SCHEMA}.customers")[
        "customer_id"
    ].tolist()


def check_raw_table(warehouse: Warehouse, table: str) -> dg.AssetCheckResult:
    """Validate a whole raw table against the contract, in batches; any violation fails."""
    known = None if table == "customers" else _known_customers(warehouse)
    schema = table_schema(table, known, event_types=warehouse.settings.event_types)
    columns = ", ".join(name for name, _ in RAW_COLUMNS[table])
    violations: list[str] = []
    rows = 0
    with warehouse.session() as session:
        for batch in session.query_batches(
            f"SELECT {columns} FROM {RAW_SCHEMA}.{table}", CHECK_BATCH_ROWS
        ):
            batch.index = batch.index + rows
            rows += len(batch)
            source = f"{RAW_SCHEMA}.{table}"
            try:
                # Drivers return dates and narrow ints; bring them to the contract's dtypes.
                validate(schema, normalize(table, batch, source), source)
            except ContractError as exc:
                violations += [v.describe() for v in exc.violations]
    violations += _duplicate_keys(warehouse, table)
    return dg.AssetCheckResult(
        passed=not violations,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{rows:,} rows meet the raw contract"
            if not violations
            else f"{len(violations)} contract violation(s) in {RAW_SCHEMA}.{table}"
        ),
        metadata={
            "rows_checked": rows,
            "violations": dg.MetadataValue.md("\n".join(f"- {v}" for v in violations) or "none"),
        },
    )


def _duplicate_keys(warehouse: Warehouse, table: str) -> list[str]:
    """Keys repeated anywhere in the table: pandera sees one batch at a time."""
    key = UNIQUE_KEYS.get(table)
    if not key:
        return []
    columns = ", ".join(key)
    duplicated = warehouse.query_df(
        f"SELECT {columns}, count(*) AS n FROM {RAW_SCHEMA}.{table} "
        f"WHERE {' AND '.join(f'{c} IS NOT NULL' for c in key)} "
        f"GROUP BY {columns} HAVING count(*) > 1 ORDER BY {columns} LIMIT 5"
    )
    if duplicated.empty:
        return []
    examples = ", ".join(str(tuple(r)) for r in duplicated[list(key)].itertuples(index=False))
    return [f"key ({columns}) repeats across the table, e.g. {examples}"]


def _contract_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(table),
        name="meets_raw_contract",
        blocking=True,
        description=(
            "pandera: types, unique keys, no null keys, no future timestamps, no negative "
            "revenue, every row's customer exists. Failing blocks everything downstream."
        ),
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        return check_raw_table(warehouse.warehouse(), table)

    return _check


raw_contract_checks = [_contract_check(t) for t in TABLES]


raw_assets = [raw_customers, raw_subscriptions, raw_events, raw_labels]
