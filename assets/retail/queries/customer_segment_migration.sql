-- Customer segment migration: how many customers moved from one segment to another, per month.
-- Grain: one row per (month of the change, from_segment, to_segment). Built from the SCD2
-- history of dim_customer: a change is a version whose segment differs from the previous one.
-- Run: lakehouse query --file assets/retail/queries/customer_segment_migration.sql
with versions as (
    select
        customer_id,
        valid_from,
        segment,
        lag(segment) over (partition by customer_id order by valid_from) as previous_segment
    from gold_retail.dim_customer
    where customer_id is not null and not is_inferred
)
select
    strftime(valid_from, '%Y-%m') as year_month,
    previous_segment as from_segment,
    segment as to_segment,
    count(distinct customer_id) as customers
from versions
where previous_segment is not null and previous_segment <> segment
group by 1, 2, 3
order by 1, customers desc, 2, 3
