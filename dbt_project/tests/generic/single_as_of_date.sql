{% test single_as_of_date(model) %}
select count(distinct as_of_date) as n_dates
from {{ model }}
having count(distinct as_of_date) > 1
{% endtest %}
