select
    cast(customer_id as varchar) as customer_id,
    cast(signup_at as timestamp) as signup_at
from {{ source('raw', 'customers') }}
