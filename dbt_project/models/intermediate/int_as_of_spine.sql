{#- Which customers get a feature row at which as_of_date: those live at that moment
    under the churn definition (an active subscription, or recent activity), judged
    only from data before as_of_date; plus every (customer, as_of_date) a label names. -#}
-- Both churn definitions' inputs, so lineage is the same whichever is configured:
-- depends_on: {{ ref('stg_subscriptions') }}
-- depends_on: {{ ref('int_customer_daily') }}
with dates as (
    select d.as_of_date, b.has_subscriptions, b.has_activity
    from {{ ref('int_as_of_dates') }} d
    cross join {{ ref('int_data_bounds') }} b
),

customers as (
    select customer_id, signup_at from {{ ref('stg_customers') }}
),

{% if var('churn_definition') == 'contractual' %}
live as (
    select distinct s.customer_id, d.as_of_date
    from dates d
    join {{ ref('stg_subscriptions') }} s
      on s.started_at < cast(d.as_of_date as timestamp)
     and (s.ended_at is null or s.ended_at >= cast(d.as_of_date as timestamp))
),
{% else %}
live as (
    select distinct a.customer_id, d.as_of_date
    from dates d
    join {{ ref('int_customer_daily') }} a
      on a.is_active
     and a.event_date < d.as_of_date
     and a.event_date >= d.as_of_date - {{ int_var('horizon_days') }}
),
{% endif %}

{#- Data with no behaviour of the kind the definition needs (for example a one-row
    snapshot): every signed-up customer is live. -#}
everyone as (
    select c.customer_id, d.as_of_date
    from dates d
    cross join customers c
    where not {{ 'd.has_subscriptions' if var('churn_definition') == 'contractual' else 'd.has_activity' }}
),

generated as (
    select l.customer_id, l.as_of_date
    from (select * from live union all select * from everyone) l
    join customers c on c.customer_id = l.customer_id
    where c.signup_at < cast(l.as_of_date as timestamp)
)

select customer_id, as_of_date, false as is_labeled from generated
where not exists (
    select 1 from {{ ref('stg_labels') }} lb
    where lb.customer_id = generated.customer_id and lb.as_of_date = generated.as_of_date
)
union all
select customer_id, as_of_date, true as is_labeled from {{ ref('stg_labels') }}
