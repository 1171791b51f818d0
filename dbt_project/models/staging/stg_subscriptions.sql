select
    cast(customer_id as varchar) as customer_id,
    cast(started_at as timestamp) as started_at,
    cast(ended_at as timestamp) as ended_at,
    cast(plan as varchar) as plan,
    cast(monthly_revenue as double precision) as monthly_revenue
from {{ source('raw', 'subscriptions') }}
