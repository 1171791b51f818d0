{#- Static customer attributes (any columns a customers file carries beyond the key
    and signup_at), long so any data set fits one contract; models pivot them. -#}
select
    a.customer_id,
    a.attribute_name,
    a.value_text,
    a.value_number
from {{ ref('stg_customer_attributes') }} a
