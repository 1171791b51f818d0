{#- Helpers that expand the feature families and windows into columns. -#}

{% macro feature_families() %}{{ return(var('feature_families')) }}{% endmacro %}
{% macro feature_windows() %}{{ return(var('feature_windows')) }}{% endmacro %}

{#- CASE expression mapping a raw event_type to its feature family (null when unmapped). -#}
{% macro event_family(column) -%}
    case {{ column }}
    {%- for event_type, family in var('event_families').items() %}
        when '{{ event_type }}' then '{{ family }}'
    {%- endfor %}
        else null
    end
{%- endmacro %}

{% macro sql_list(values) -%}
    ({% for v in values %}'{{ v }}'{% if not loop.last %}, {% endif %}{% endfor %})
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
    {%- for c in ['active_days_7d', 'active_days_30d', 'active_days_90d', 'activity_trend_30d',
                  'avg_ticket_severity_90d', 'avg_satisfaction_90d', 'payment_failure_rate_90d',
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
