{#- Labels and the subscription in force, shared by training_examples, customer_features
    and prediction_outcomes. -#}

{#- The churn label of a (customer_id, as_of_date) row aliased `x`, derived from data
    under the configured definition. It looks only forward, at
    [as_of_date, as_of_date + horizon_days), so callers keep only rows whose window has
    closed (as_of_date + horizon_days <= data_end) and whose data has what the
    definition needs (label_data_present). Used by training_examples and
    prediction_outcomes, so a model is judged live by the label it was trained on.
    The subqueries' aliases are long on purpose: once sqlglot (dagster-dbt's column
    lineage) inlines the caller's CTEs, a short one such as `s` can capture the
    caller's own alias and the model loses its column lineage. -#}
{% macro derived_churned(x) -%}
{%- set horizon = int_var('horizon_days') -%}
{%- if var('churn_definition') == 'contractual' -%}
    {#- Churned: no subscription in force at the end of the window. #}
    case when exists (
        select 1 from {{ ref('stg_subscriptions') }} period_at_window_end
        where period_at_window_end.customer_id = {{ x }}.customer_id
          and period_at_window_end.started_at < cast({{ x }}.as_of_date + {{ horizon }} as timestamp)
          and (period_at_window_end.ended_at is null
               or period_at_window_end.ended_at >= cast({{ x }}.as_of_date + {{ horizon }} as timestamp))
    ) then 0 else 1 end
{%- else -%}
    {#- Churned: no activity event in the window. #}
    case when exists (
        select 1 from {{ ref('int_customer_daily') }} day_in_window
        where day_in_window.customer_id = {{ x }}.customer_id
          and day_in_window.is_active
          and day_in_window.event_date >= {{ x }}.as_of_date
          and day_in_window.event_date < {{ x }}.as_of_date + {{ horizon }}
    ) then 0 else 1 end
{%- endif -%}
{%- endmacro %}

{#- Whether int_data_bounds (aliased `b`) says the data can derive labels: subscriptions
    for the contractual definition, activity events for the inactivity one. -#}
{% macro label_data_present(b) -%}
    {{ b }}.{{ 'has_subscriptions' if var('churn_definition') == 'contractual' else 'has_activity' }}
{%- endmacro %}

{#- The subscription period in force at as_of_date for every (customer_id, as_of_date)
    of the relation `keys`: started before it and not ended before it. Its ended_at is
    only compared with as_of_date, never read, so no future leaks. -#}
{% macro period_in_force(keys) -%}
    select customer_id, as_of_date, plan, monthly_revenue
    from (
        select
            k.customer_id,
            k.as_of_date,
            h.plan,
            h.monthly_revenue,
            row_number() over (partition by k.customer_id, k.as_of_date order by h.started_at desc) as rn
        from {{ keys }} k
        join {{ ref('int_subscription_history') }} h
          on h.customer_id = k.customer_id
         and h.started_at < cast(k.as_of_date as timestamp)
         and (h.ended_at is null or h.ended_at >= cast(k.as_of_date as timestamp))
    ) ranked
    where rn = 1
{%- endmacro %}
