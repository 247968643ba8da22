{#
  The columns together identify a row (the model's grain), without a package download:
  dbt_utils.unique_combination_of_columns, written out.
#}
{% test unique_grain(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows_per_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
