{#- Helpers that expand the feature families and windows into columns. -#}

{% macro feature_families() %}{{ return(var('feature_families')) }}{% endmacro %}
{% macro feature_windows() %}{{ return(var('feature_windows')) }}{% endmacro %}
{% macro ewm_families() %}{{ return(var('ewm_families')) }}{% endmacro %}
{% macro ewm_half_lives() %}{{ return(var('ewm_half_lives')) }}{% endmacro %}
{% macro peak_families() %}{{ return(var('peak_families')) }}{% endmacro %}
{% macro peak_windows() %}{{ return(var('peak_windows')) }}{% endmacro %}

{#- Weight of a day `age_days` before as_of_date (1 = the day just before) in an
    exponentially weighted sum: 1 for that day, halving every half_life days. The age is
    cast to double so DuckDB and Postgres both compute in floating point. -#}
{% macro ewm_weight(age_days, half_life) -%}
    exp({{ -0.6931471805599453 / half_life }} * cast({{ age_days }} - 1 as double precision))
{%- endmacro %}

{#- CASE expression mapping a raw event_type to its feature family (null when unmapped). -#}
{% macro event_family(column) -%}
    case {{ column }}
    {%- for event_type, family in var('event_families').items() %}
        when {{ sql_string(event_type) }} then {{ sql_string(family) }}
    {%- endfor %}
        else null
    end
{%- endmacro %}

{#- Every behavioural feature column name, in order. Used by marts that carry features. -#}
{% macro behavioural_feature_columns() %}
    {%- set cols = [] -%}
    {%- for f in feature_families() -%}
        {%- for w in feature_windows() -%}
            {%- do cols.append(f ~ '_count_' ~ w ~ 'd') -%}
            {%- do cols.append(f ~ '_value_' ~ w ~ 'd') -%}
        {%- endfor -%}
        {%- do cols.append(f ~ '_count_trend_30d') -%}
        {%- do cols.append(f ~ '_days_since_last') -%}
    {%- endfor -%}
    {%- for c in ['active_days_7d', 'active_days_30d', 'active_days_90d', 'activity_trend_30d'] -%}
        {%- do cols.append(c) -%}
    {%- endfor -%}
    {%- for h in ewm_half_lives() -%}
        {%- for f in ewm_families() -%}
            {%- do cols.append(f ~ '_value_ewm' ~ h ~ 'd') -%}
        {%- endfor -%}
        {%- do cols.append('active_days_ewm' ~ h ~ 'd') -%}
    {%- endfor -%}
    {%- for f in peak_families() -%}
        {%- for w in peak_windows() -%}
            {%- do cols.append(f ~ '_mean_vs_peak_' ~ w ~ 'd') -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for c in ['avg_ticket_severity_90d', 'avg_satisfaction_90d', 'payment_failure_rate_90d',
                  'tenure_days', 'current_plan', 'monthly_revenue', 'subscriptions_before',
                  'upgrades_180d', 'downgrades_180d', 'days_since_plan_change'] -%}
        {%- do cols.append(c) -%}
    {%- endfor -%}
    {{ return(cols) }}
{% endmacro %}

{% macro feature_select_list(alias) -%}
    {%- for c in behavioural_feature_columns() %}
    {{ alias }}.{{ c }}{% if not loop.last %},{% endif %}
    {%- endfor %}
{%- endmacro %}
