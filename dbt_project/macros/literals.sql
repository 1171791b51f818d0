{#- Configured values (event types, the churn definition, windows) reach SQL only
    through these macros: strings as quoted literals with their single quotes doubled,
    numbers only when they really are integers. A value is data, never SQL. -#}

{% macro sql_string(value) -%}
    {{ dbt.string_literal(dbt.escape_single_quotes(value | string)) }}
{%- endmacro %}

{#- A parenthesised list of string literals for `x in (...)`. -#}
{% macro sql_list(values) -%}
    ({% for v in values %}{{ sql_string(v) }}{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}

{#- An integer var, or a compile error naming it (never text spliced into SQL). -#}
{% macro int_var(name) -%}
    {%- set value = var(name) -%}
    {%- if value is not number or value | int != value -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ " must be an integer, got " ~ value) }}
    {%- endif -%}
    {{ return(value | int) }}
{%- endmacro %}
