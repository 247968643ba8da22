{#
  Schemas are lakehouse namespaces (`<layer>_<domain>`, e.g. gold_marts), used as given: the
  asset key, the table location and the DuckDB/Trino name all follow from the schema and the
  model name through lakehouse.naming, so dbt must not prefix them with the target schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
  {{ custom_schema_name if custom_schema_name is not none else target.schema }}
{%- endmacro %}


{#
  `where <column> between <min_date> and <max_date>` for a run over a Dagster partition range
  (dbt vars min_date / max_date, both inclusive), or `true` when the run covers everything.
  The dates are checked to be dates before they reach the SQL.
#}
{% macro partition_filter(column) -%}
  {%- set lo, hi = var('min_date', none), var('max_date', none) -%}
  {%- if lo is none and hi is none -%}
    true
  {%- else -%}
    {%- for value in [lo, hi] -%}
      {%- if value is none or not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', value | string) -%}
        {{ exceptions.raise_compiler_error("vars min_date and max_date must both be dates YYYY-MM-DD, got " ~ lo ~ " and " ~ hi) }}
      {%- endif -%}
    {%- endfor -%}
    {{ column }} between date '{{ lo }}' and date '{{ hi }}'
  {%- endif -%}
{%- endmacro %}


{# A SQL string literal with embedded quotes doubled (as lakehouse.sql.quote_literal does). #}
{% macro lakehouse_literal(value) -%}
  '{{ (value | string).replace("'", "''") }}'
{%- endmacro %}
