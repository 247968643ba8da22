{# Growth of `current` over `prior` in percent, rounded to two places; null without a prior value.
   Divided as doubles on every engine (DuckDB divides decimals as doubles, Trino at their scale). #}
{% macro yoy_growth_pct(current, prior) -%}
  cast(case when {{ prior }} is null or {{ prior }} = 0 then null
       else round(cast({{ current }} - {{ prior }} as double) * 100 / cast({{ prior }} as double), 2) end as decimal(9, 2))
{%- endmacro %}


{#
  The RFM segment of a customer from recency, frequency and monetary scores (1 low .. 5 high):
    champions          bought recently, often and a lot   r >= 4, f >= 4, m >= 4
    loyal              buy often                           f >= 4
    new                bought recently, once or rarely     r >= 4, f <= 2
    at_risk            used to buy often, not lately       r <= 2, f >= 3
    hibernating        neither recent nor frequent         r <= 2, f <= 2
    promising          everyone else
  The first rule that matches wins.
#}
{% macro rfm_segment(r, f, m) -%}
  case
    when {{ r }} >= 4 and {{ f }} >= 4 and {{ m }} >= 4 then 'champions'
    when {{ f }} >= 4 then 'loyal'
    when {{ r }} >= 4 and {{ f }} <= 2 then 'new'
    when {{ r }} <= 2 and {{ f }} >= 3 then 'at_risk'
    when {{ r }} <= 2 and {{ f }} <= 2 then 'hibernating'
    else 'promising'
  end
{%- endmacro %}


{# `YYYY-MM` of a date, in the dialect of the target. #}
{% macro year_month(column) -%}
  {{ return(adapter.dispatch('year_month')(column)) }}
{%- endmacro %}

{% macro default__year_month(column) -%}
  strftime({{ column }}, '%Y-%m')
{%- endmacro %}

{% macro trino__year_month(column) -%}
  date_format({{ column }}, '%Y-%m')
{%- endmacro %}
