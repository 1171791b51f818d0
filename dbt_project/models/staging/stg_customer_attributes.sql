select
    cast(customer_id as varchar) as customer_id,
    cast(attribute_name as varchar) as attribute_name,
    cast(value_text as varchar) as value_text,
    cast(value_number as double precision) as value_number
from {{ source('raw', 'customer_attributes') }}
