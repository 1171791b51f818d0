{#- Point-in-time features: the row at as_of_date uses only data with timestamps
    strictly before as_of_date (events on that day or later never count). -#}
with spine as (
    select customer_id, as_of_date from {{ ref('int_as_of_spine') }}
),

{#- Events reach a snapshot through disjoint day buckets before it ([0,7), [7,30),
    [30,60), [60,90), [90,180) days back): one pass sums each bucket, then every window
    is a sum of a few bucket rows. Far cheaper than a filtered aggregate per window
    over the whole as-of join. -#}
{%- set edges = (feature_windows() + [60]) | unique | sort %}
bucketed as (
    select
        s.customer_id,
        s.as_of_date,
        case
        {%- for e in edges[:-1] %}
            when d.event_date >= s.as_of_date - {{ e }} then {{ e }}
        {%- endfor %}
            else {{ edges[-1] }}
        end as bucket,
        {%- for f in feature_families() %}
        sum(d.{{ f }}_n) as {{ f }}_n,
        sum(d.{{ f }}_value) as {{ f }}_value,
        max(d.event_date) filter (where d.{{ f }}_n > 0) as {{ f }}_last_date,
        {%- endfor %}
        {#- Exponentially weighted sums add up across buckets like plain sums. #}
        {%- for h in ewm_half_lives() %}
        {%- for f in ewm_families() %}
        sum(d.{{ f }}_value * {{ ewm_weight('(s.as_of_date - d.event_date)', h) }}) as {{ f }}_value_ewm{{ h }}d,
        {%- endfor %}
        sum(case when d.is_active then {{ ewm_weight('(s.as_of_date - d.event_date)', h) }} else 0 end) as active_days_ewm{{ h }}d,
        {%- endfor %}
        {%- for f in peak_families() %}
        max(d.{{ f }}_value / nullif(d.{{ f }}_n, 0)) as {{ f }}_peak,
        {%- endfor %}
        count(*) filter (where d.is_active) as active_days
    from spine s
    join {{ ref('int_customer_daily') }} d
      on d.customer_id = s.customer_id
     and d.event_date < s.as_of_date
     and d.event_date >= s.as_of_date - {{ edges[-1] }}
    group by 1, 2, 3
),

events as (
    select
        s.customer_id,
        s.as_of_date,
        {%- for f in feature_families() %}
        {%- for w in feature_windows() %}
        cast(coalesce(sum(b.{{ f }}_n) filter (where b.bucket <= {{ w }}), 0) as bigint) as {{ f }}_count_{{ w }}d,
        cast(coalesce(sum(b.{{ f }}_value) filter (where b.bucket <= {{ w }}), 0) as double precision) as {{ f }}_value_{{ w }}d,
        {%- endfor %}
        cast(coalesce(sum(b.{{ f }}_n) filter (where b.bucket = 60), 0) as bigint) as {{ f }}_count_prev_30d,
        max(b.{{ f }}_last_date) as {{ f }}_last_date,
        {%- endfor %}
        {%- for h in ewm_half_lives() %}
        {%- for f in ewm_families() %}
        cast(coalesce(sum(b.{{ f }}_value_ewm{{ h }}d), 0) as double precision) as {{ f }}_value_ewm{{ h }}d,
        {%- endfor %}
        cast(coalesce(sum(b.active_days_ewm{{ h }}d), 0) as double precision) as active_days_ewm{{ h }}d,
        {%- endfor %}
        {%- for f in peak_families() %}
        max(b.{{ f }}_peak) as {{ f }}_peak,
        {%- endfor %}
        cast(coalesce(sum(b.active_days) filter (where b.bucket <= 7), 0) as bigint) as active_days_7d,
        cast(coalesce(sum(b.active_days) filter (where b.bucket <= 30), 0) as bigint) as active_days_30d,
        cast(coalesce(sum(b.active_days) filter (where b.bucket <= 90), 0) as bigint) as active_days_90d,
        cast(coalesce(sum(b.active_days) filter (where b.bucket = 60), 0) as bigint) as active_days_prev_30d
    from spine s
    left join bucketed b on b.customer_id = s.customer_id and b.as_of_date = s.as_of_date
    group by s.customer_id, s.as_of_date
),

subscriptions as (
    select
        s.customer_id,
        s.as_of_date,
        cast(count(h.started_at) as bigint) as subscriptions_before,
        cast(count(*) filter (where h.change_kind = 'upgrade' and h.started_at >= cast(s.as_of_date - 180 as timestamp)) as bigint) as upgrades_180d,
        cast(count(*) filter (where h.change_kind = 'downgrade' and h.started_at >= cast(s.as_of_date - 180 as timestamp)) as bigint) as downgrades_180d,
        max(h.started_at) filter (where h.change_kind in ('upgrade', 'downgrade')) as last_plan_change_at
    from spine s
    left join {{ ref('int_subscription_history') }} h
      on h.customer_id = s.customer_id
     and h.started_at < cast(s.as_of_date as timestamp)
    group by s.customer_id, s.as_of_date
),

{#- The period in force at as_of_date (macros/outcomes.sql): its ended_at is only
    compared with as_of_date, never read, so no future leaks. -#}
current_period as (
    {{ period_in_force('spine') }}
)

select
    e.customer_id,
    e.as_of_date,
    {%- for f in feature_families() %}
    {%- for w in feature_windows() %}
    e.{{ f }}_count_{{ w }}d,
    e.{{ f }}_value_{{ w }}d,
    {%- endfor %}
    cast(e.{{ f }}_count_30d - e.{{ f }}_count_prev_30d as bigint) as {{ f }}_count_trend_30d,
    cast(e.as_of_date - e.{{ f }}_last_date as integer) as {{ f }}_days_since_last,
    {%- endfor %}
    e.active_days_7d,
    e.active_days_30d,
    e.active_days_90d,
    cast(e.active_days_30d - e.active_days_prev_30d as bigint) as activity_trend_30d,
    {%- for h in ewm_half_lives() %}
    {%- for f in ewm_families() %}
    e.{{ f }}_value_ewm{{ h }}d,
    {%- endfor %}
    e.active_days_ewm{{ h }}d,
    {%- endfor %}
    {#- Mean reading per event in the window over the peak daily reading in 180 days. #}
    {%- for f in peak_families() %}
    {%- for w in peak_windows() %}
    cast(case when e.{{ f }}_count_{{ w }}d > 0 and e.{{ f }}_peak > 0
         then e.{{ f }}_value_{{ w }}d / e.{{ f }}_count_{{ w }}d / e.{{ f }}_peak end as double precision) as {{ f }}_mean_vs_peak_{{ w }}d,
    {%- endfor %}
    {%- endfor %}
    cast(case when e.ticket_count_90d > 0 then e.ticket_value_90d / e.ticket_count_90d end as double precision) as avg_ticket_severity_90d,
    cast(case when e.satisfaction_count_90d > 0 then e.satisfaction_value_90d / e.satisfaction_count_90d end as double precision) as avg_satisfaction_90d,
    cast(case when e.invoice_count_90d + e.payment_failure_count_90d > 0
         then 1.0 * e.payment_failure_count_90d / (e.invoice_count_90d + e.payment_failure_count_90d) end as double precision) as payment_failure_rate_90d,
    cast(e.as_of_date - cast(c.signup_at as date) as integer) as tenure_days,
    cast(p.plan as varchar) as current_plan,
    cast(p.monthly_revenue as double precision) as monthly_revenue,
    sb.subscriptions_before,
    sb.upgrades_180d,
    sb.downgrades_180d,
    cast(e.as_of_date - cast(sb.last_plan_change_at as date) as integer) as days_since_plan_change
from events e
join {{ ref('stg_customers') }} c on c.customer_id = e.customer_id
join subscriptions sb on sb.customer_id = e.customer_id and sb.as_of_date = e.as_of_date
left join current_period p on p.customer_id = e.customer_id and p.as_of_date = e.as_of_date
