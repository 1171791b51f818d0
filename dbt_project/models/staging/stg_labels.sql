select
    cast(customer_id as varchar) as customer_id,
    cast(as_of_date as date) as as_of_date,
    cast(churned as integer) as churned
from {{ source('raw', 'labels') }}
