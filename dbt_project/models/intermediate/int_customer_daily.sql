{#- One row per customer and day with events: counts and value sums per feature family.
    Pivoting here keeps the as-of join in customer_features one row per customer-day. -#}
select
    customer_id,
    event_date,
    bool_or(is_activity) as is_active,
    {%- for f in feature_families() %}
    cast(count(*) filter (where feature_family = {{ sql_string(f) }}) as bigint) as {{ f }}_n,
    cast(coalesce(sum(value) filter (where feature_family = {{ sql_string(f) }}), 0) as double precision) as {{ f }}_value{% if not loop.last %},{% endif %}
    {%- endfor %}
from {{ ref('stg_events') }}
group by customer_id, event_date
