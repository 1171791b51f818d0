{#- The observed period. data_start is the first day of observed behaviour (events
    when there are any: sign-ups and subscriptions reach back before the history a
    data set carries). data_end is the day after the last observation: the as_of date
    for scoring, and the first day whose outcome is still unknown. -#}
with events as (
    select min(event_date) as first_day, max(event_date) as last_day from {{ ref('stg_events') }}
),

subscriptions as (
    select
        min(cast(started_at as date)) as first_day,
        max(cast(greatest(started_at, coalesce(ended_at, started_at)) as date)) as last_day
    from {{ ref('stg_subscriptions') }}
),

customers as (
    select min(cast(signup_at as date)) as first_day, max(cast(signup_at as date)) as last_day
    from {{ ref('stg_customers') }}
),

labels as (
    select min(as_of_date) as first_day, max(as_of_date) - 1 as last_day from {{ ref('stg_labels') }}
)

select
    coalesce(e.first_day, s.first_day, c.first_day, l.first_day) as data_start,
    cast(greatest(
        coalesce(e.last_day, c.last_day), coalesce(s.last_day, c.last_day),
        coalesce(c.last_day, e.last_day), coalesce(l.last_day, c.last_day)
    ) + 1 as date) as data_end,
    (select count(*) > 0 from {{ ref('stg_subscriptions') }}) as has_subscriptions,
    (select count(*) > 0 from {{ ref('stg_events') }} where is_activity) as has_activity
from events e
cross join subscriptions s
cross join customers c
cross join labels l
