{#- Snapshot dates: data_end, then every cadence_days back while at least
    min_history_days of history lie before them. -#}
with steps as (
    select cast(g.k * {{ int_var('cadence_days') }} as integer) as days_back
    from generate_series(0, 5000) as g(k)
)
select cast(b.data_end - s.days_back as date) as as_of_date
from {{ ref('int_data_bounds') }} b
cross join steps s
where b.data_end - s.days_back >= b.data_start + {{ int_var('min_history_days') }}
   or s.days_back = 0
