{#
  The `lakehouse` materialisation: a mart lands as a lakehouse table at the location its name
  maps to, in the lake's table format, through the same table layer as every other asset.

  1. DuckDB writes the model's rows to a staging Parquet file;
  2. lakehouse_commit() (a function the lakehouse plugin registers, lakehouse/dbt/plugin.py) hands
     them to the TableStore in one atomic commit: a run over a partition range replaces exactly
     those partitions (config partition_by, dbt vars min_date/max_date), any other run replaces
     the table; a failed commit leaves the previous version;
  3. the model's relation becomes a view over the lakehouse table, so later models and tests of
     the same run read what was committed.
#}
{% materialization lakehouse, adapter='duckdb' %}
  {%- set target_relation = this.incorporate(type='view') -%}
  {%- set partition_by = config.get('partition_by') or '' -%}
  {%- set table_format = config.get('lakehouse_format') or '' -%}
  {%- set lo = var('min_date', none) if partition_by else none -%}
  {%- set hi = var('max_date', none) if partition_by else none -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {%- set staging = run_query("select lakehouse_staging_literal(" ~ lakehouse_literal(this.schema) ~ ", " ~ lakehouse_literal(this.identifier) ~ ")").columns[0].values()[0] -%}
  {% call statement('stage') -%}
    copy ({{ sql }}) to {{ staging }} (format parquet)
  {%- endcall %}

  {%- set commit_sql -%}
    select lakehouse_commit(
      {{ lakehouse_literal(this.schema) }}, {{ lakehouse_literal(this.identifier) }}, {{ staging }},
      {{ lakehouse_literal(partition_by) }}, {{ lakehouse_literal(lo or '') }}, {{ lakehouse_literal(hi or '') }},
      {{ lakehouse_literal(table_format) }}, {{ lakehouse_literal(model.unique_id) }}, {{ lakehouse_literal(invocation_id) }},
      {{ lakehouse_literal(var('dagster_run_id', '')) }}
    )
  {%- endset -%}
  {%- set committed = fromjson(run_query(commit_sql).columns[0].values()[0]) -%}
  {{ log("lakehouse: " ~ committed['operation'] ~ " " ~ committed['table'] ~ " (" ~ committed['format'] ~ ") version " ~ committed['version'] ~ ", " ~ committed['rows_written'] ~ " rows", info=True) }}

  {% do adapter.create_schema(target_relation) %}
  {% call statement('main') -%}
    create or replace view {{ target_relation }} as {{ committed['scan_sql'] }}
  {%- endcall %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {# commit, or other threads' connections (the model's tests) would not see the view #}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#
  The same contract on the scale-out stack (dbt-trino, target `trino`): the mart is a table of
  the lake's catalog (iceberg or delta_lake) in schema gold_marts, which Trino writes itself.
  A run over a partition range deletes and re-inserts exactly those days; any other run
  replaces the table. Not exercised in CI (no Trino server here): see deploy/README.md.
#}
{% materialization lakehouse, adapter='trino' %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set partition_by = config.get('partition_by') -%}
  {%- set existing = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
  {{ run_hooks(pre_hooks) }}
  {% if partition_by and var('min_date', none) is not none and existing is not none %}
    {% call statement('delete') -%}
      delete from {{ target_relation }} where {{ partition_filter(partition_by) }}
    {%- endcall %}
    {% call statement('main') -%}
      insert into {{ target_relation }} {{ sql }}
    {%- endcall %}
  {% else %}
    {% call statement('main') -%}
      create or replace table {{ target_relation }}
      {%- if partition_by %} with (partitioning = array[{{ lakehouse_literal(partition_by) }}]){% endif %}
      as {{ sql }}
    {%- endcall %}
  {% endif %}
  {{ run_hooks(post_hooks) }}
  {{ adapter.commit() }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
