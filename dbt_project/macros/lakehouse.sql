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

  Every run of an existing table is ONE statement, so one commit in either connector: a MERGE on
  the model's grain (config unique_key) whose source is the model's rows full-outer-joined with
  the keys the table holds now in the run's scope. Produced keys are updated or inserted; keys
  of the scope the model no longer produces are deleted (Trino has no WHEN NOT MATCHED BY
  SOURCE). The scope is the run's partition range (config partition_by, vars min_date/max_date)
  or else the whole table. A statement that fails, however late, commits nothing: the table
  keeps its previous rows. (Trino refuses CREATE OR REPLACE on Delta tables with change data
  feed, as the lake's are; a MERGE works on both connectors.)
  A first run (no table) and --full-refresh replace the table: create or replace table ... as,
  a new Delta table at the location the lake's naming gives it (its schema's location + name).
#}
{% materialization lakehouse, adapter='trino' %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set partition_by = config.get('partition_by') -%}
  {%- set unique_key = config.get('unique_key') -%}
  {%- set in_range = partition_by and var('min_date', none) is not none -%}
  {%- set existing = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
  {{ run_hooks(pre_hooks) }}
  {% if existing is not none and not should_full_refresh() and (unique_key or in_range) %}
    {% call statement('main') -%}
      {{ lakehouse_merge(target_relation, sql, unique_key, partition_by if in_range else none) }}
    {%- endcall %}
  {% else %}
    {%- set connector = run_query("select connector_name from system.metadata.catalogs where catalog_name = " ~ lakehouse_literal(this.database)).columns[0].values() | first -%}
    {%- set properties = [] -%}
    {%- if connector == 'delta_lake' -%}
      {%- set shown = run_query("show create schema " ~ adapter.quote(this.database) ~ "." ~ adapter.quote(this.schema)).columns[0].values() | first -%}
      {%- set location = modules.re.search("location = '([^']*)'", shown) -%}
      {%- if location -%}
        {%- do properties.append("location = " ~ lakehouse_literal(location.group(1).rstrip('/') ~ '/' ~ this.identifier)) -%}
      {%- endif -%}
    {%- endif -%}
    {%- if partition_by -%}
      {#- the table property naming the partition column differs between the two connectors -#}
      {%- do properties.append(('partitioned_by' if connector == 'delta_lake' else 'partitioning') ~ " = array[" ~ lakehouse_literal(partition_by) ~ "]") -%}
    {%- endif -%}
    {% call statement('main') -%}
      create or replace table {{ target_relation }}
      {%- if properties %} with ({{ properties | join(', ') }}){% endif %}
      as {{ sql }}
    {%- endcall %}
  {% endif %}
  {{ run_hooks(post_hooks) }}
  {{ adapter.commit() }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#
  The one MERGE that replaces the rows of `target` in scope with the rows of `sql` (see the trino
  materialisation above): the partitions of `partition_by` in the run's range, or the whole
  table when `partition_by` is none. `unique_key`: the model's grain, a column or a list of
  columns (config unique_key), compared null-safely.
#}
{% macro lakehouse_merge(target, sql, unique_key, partition_by) -%}
  {%- set keys = ([unique_key] if unique_key is string else (unique_key or [])) | list -%}
  {%- if not keys -%}
    {{ exceptions.raise_compiler_error("model " ~ target ~ " is partitioned by " ~ partition_by ~ ": a partition-range run needs its grain as config unique_key (a column or a list of columns)") }}
  {%- endif -%}
  {%- set columns = get_columns_in_query(sql) | map('lower') | list -%}
  {%- set existing = adapter.get_columns_in_relation(target) | map(attribute='name') | map('lower') | list -%}
  {%- if columns | sort != existing | sort -%}
    {{ exceptions.raise_compiler_error("model " ~ target ~ " now has columns " ~ (columns | join(', ')) ~ " but the table has " ~ (existing | join(', ')) ~ ": rebuild it with --full-refresh") }}
  {%- endif -%}
  {%- for key in keys if key | lower not in columns -%}
    {{ exceptions.raise_compiler_error("unique_key column " ~ key ~ " is not a column of " ~ target) }}
  {%- endfor -%}
  merge into {{ target }} as lh_target
  using (
    with lh_model as (
      {{ sql }}
    )
    select
      {%- for key in keys %}
      coalesce(lh_new.{{ adapter.quote(key) }}, lh_old.{{ adapter.quote(key) }}) as {{ adapter.quote('lh_key_' ~ loop.index) }},
      {%- endfor %}
      {%- for column in columns %}
      lh_new.{{ adapter.quote(column) }},
      {%- endfor %}
      lh_new.lh_produced
    from (select *, true as lh_produced from lh_model) as lh_new
    full outer join (
      select distinct {% for key in keys %}{{ adapter.quote(key) }}{{ ", " if not loop.last }}{% endfor %}
      from {{ target }}
      {%- if partition_by %}
      where {{ partition_filter(adapter.quote(partition_by)) }}
      {%- endif %}
    ) as lh_old
      on {% for key in keys %}lh_new.{{ adapter.quote(key) }} is not distinct from lh_old.{{ adapter.quote(key) }}{{ " and " if not loop.last }}{% endfor %}
  ) as lh_source
  on {% if partition_by %}{{ partition_filter('lh_target.' ~ adapter.quote(partition_by)) }} and {% endif %}
    {%- for key in keys %}
    lh_target.{{ adapter.quote(key) }} is not distinct from lh_source.{{ adapter.quote('lh_key_' ~ loop.index) }}{{ " and" if not loop.last }}
    {%- endfor %}
  when matched and lh_source.lh_produced is null then delete
  when matched then update set
    {%- for column in columns %}
    {{ adapter.quote(column) }} = lh_source.{{ adapter.quote(column) }}{{ "," if not loop.last }}
    {%- endfor %}
  when not matched and lh_source.lh_produced then insert (
    {%- for column in columns %}{{ adapter.quote(column) }}{{ ", " if not loop.last }}{% endfor -%}
  ) values (
    {%- for column in columns %}lh_source.{{ adapter.quote(column) }}{{ ", " if not loop.last }}{% endfor -%}
  )
{%- endmacro %}
