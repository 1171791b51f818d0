{#- Features at as_of_date plus the churn label, which looks only forward:
    [as_of_date, as_of_date + horizon_days). Only snapshots whose label window has
    closed (as_of_date + horizon_days <= data_end) are examples; shipped labels win. -#}
-- Both churn definitions' inputs, so lineage is the same whichever is configured:
-- depends_on: {{ ref('stg_subscriptions') }}
-- depends_on: {{ ref('int_customer_daily') }}
{%- set horizon = int_var('horizon_days') %}
with bounds as (
    select data_end, has_subscriptions, has_activity from {{ ref('int_data_bounds') }}
),

examples as (
    select f.*, sp.is_labeled
    from {{ ref('customer_features') }} f
    join {{ ref('int_as_of_spine') }} sp
      on sp.customer_id = f.customer_id and sp.as_of_date = f.as_of_date
    cross join bounds b
    -- Labels are derived only from data that has what the definition needs
    -- (subscriptions, or activity events); otherwise only shipped labels count.
    where sp.is_labeled or (f.as_of_date + {{ horizon }} <= b.data_end and {{ label_data_present('b') }})
),

{#- Derived labels (macros/outcomes.sql), for the rows no shipped label covers. -#}
derived as (
    select x.customer_id, x.as_of_date, {{ derived_churned('x') }} as churned
    from examples x
    where not x.is_labeled
),

labels as (
    select customer_id, as_of_date, churned from derived
    union all
    select customer_id, as_of_date, churned from {{ ref('stg_labels') }}
)

select
    x.customer_id,
    x.as_of_date,
    cast(l.churned as integer) as churned,
    cast(case when x.is_labeled then 'shipped' else {{ sql_string(var("churn_definition")) }} end as varchar) as label_source,
    {{ feature_select_list('x') }}
from examples x
join labels l on l.customer_id = x.customer_id and l.as_of_date = x.as_of_date
