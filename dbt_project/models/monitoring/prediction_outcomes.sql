{#- The realized outcome of every (customer, as_of_date) whose features the scoring
    service served: the prediction log's customer_id and features_as_of. Served dates
    are the data_end of their day, rarely on the training cadence, so the outcome is
    derived here for exactly those rows, with the label macro training uses. churned
    stays null until the label window has closed; shipped labels win. -#}
-- Both churn definitions' inputs, so lineage is the same whichever is configured:
-- depends_on: {{ ref('stg_subscriptions') }}
-- depends_on: {{ ref('int_customer_daily') }}
-- depends_on: {{ source('ops', 'prediction_log') }}
{%- set horizon = int_var('horizon_days') %}
{#- The drain creates ops.prediction_log on its first run; until then nothing was served. #}
{%- set log = adapter.get_relation(database=target.database, schema='ops', identifier='prediction_log') if execute else none %}
with bounds as (
    select data_end, has_subscriptions, has_activity from {{ ref('int_data_bounds') }}
),

served as (
{%- if log %}
    select distinct customer_id, cast(features_as_of as date) as as_of_date
    from {{ log }}
    where customer_id is not null and features_as_of is not null
{%- else %}
    select cast(null as varchar) as customer_id, cast(null as date) as as_of_date
    where 1 = 0
{%- endif %}
),

closed as (
    select s.customer_id, s.as_of_date
    from served s
    cross join bounds b
    where s.as_of_date + {{ horizon }} <= b.data_end and {{ label_data_present('b') }}
),

derived as (
    select x.customer_id, x.as_of_date, {{ derived_churned('x') }} as churned
    from closed x
),

{#- The subscription period in force at as_of_date, as customer_features reads it. -#}
revenue as (
    {{ period_in_force('served') }}
)

select
    s.customer_id,
    s.as_of_date,
    cast(s.as_of_date + {{ horizon }} as date) as label_window_end,
    cast(coalesce(l.churned, d.churned) as integer) as churned,
    cast(case
        when l.churned is not null then 'shipped'
        when d.churned is not null then {{ sql_string(var("churn_definition")) }}
    end as varchar) as label_source,
    cast(r.monthly_revenue as double precision) as monthly_revenue
from served s
left join {{ ref('stg_labels') }} l on l.customer_id = s.customer_id and l.as_of_date = s.as_of_date
left join derived d on d.customer_id = s.customer_id and d.as_of_date = s.as_of_date
left join revenue r on r.customer_id = s.customer_id and r.as_of_date = s.as_of_date
