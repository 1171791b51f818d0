select
    cast(customer_id as varchar) as customer_id,
    cast(occurred_at as timestamp) as occurred_at,
    cast(occurred_at as date) as event_date,
    cast(event_type as varchar) as event_type,
    cast({{ event_family('event_type') }} as varchar) as feature_family,
    event_type in {{ sql_list(var('activity_event_types')) }} as is_activity,
    cast(value as double precision) as value
from {{ source('raw', 'events') }}
