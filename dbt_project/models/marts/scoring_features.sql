{#- The latest features of every live customer: the rows at data_end. -#}
select
    f.customer_id,
    f.as_of_date,
    {{ feature_select_list('f') }}
from {{ ref('customer_features') }} f
join {{ ref('int_data_bounds') }} b on f.as_of_date = b.data_end
