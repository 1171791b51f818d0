{#- One row describing this feature build: the churn definition and the period,
    recorded with every build so models can carry it. -#}
select
    cast({{ sql_string(var("churn_definition")) }} as varchar) as churn_definition,
    cast({{ int_var('horizon_days') }} as integer) as horizon_days,
    cast({{ int_var('cadence_days') }} as integer) as cadence_days,
    cast({{ int_var('min_history_days') }} as integer) as min_history_days,
    cast({{ sql_string(var("activity_event_types") | join(",")) }} as varchar) as activity_event_types,
    b.data_start,
    b.data_end,
    cast({{ dbt.current_timestamp() }} as timestamp) as built_at
from {{ ref('int_data_bounds') }} b
