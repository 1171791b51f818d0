{#- Subscription periods in order per customer, each marked as a start, an upgrade or
    a downgrade by comparing monthly revenue with the previous period. -#}
with ordered as (
    select
        *,
        lag(monthly_revenue) over (partition by customer_id order by started_at) as previous_revenue
    from {{ ref('stg_subscriptions') }}
)
select
    customer_id,
    started_at,
    ended_at,
    plan,
    monthly_revenue,
    cast(case
        when previous_revenue is null then 'start'
        when monthly_revenue > previous_revenue then 'upgrade'
        when monthly_revenue < previous_revenue then 'downgrade'
        else 'renewal'
    end as varchar) as change_kind
from ordered
