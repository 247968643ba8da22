-- Lifetime value and RFM segment per customer, as of the newest order in the lake.
-- Recency, frequency and monetary value are scored 1 (low) to 5 (high) in quintiles.
with orders as (
    select * from {{ ref('int_customer_orders') }}
),

as_of as (
    select max(order_date) as as_of_date from orders
),

per_customer as (
    select
        customer_id,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        cast(count(*) as bigint) as orders,
        cast(sum(units) as bigint) as units,
        cast(sum(order_value) as decimal(18, 2)) as lifetime_value
    from orders
    group by customer_id
),

scored as (
    select
        per_customer.*,
        -- divided and rounded as doubles on every engine (DuckDB divides decimals as doubles,
        -- Trino at the operands' scale, rounding half up: 2113.49 / 2 would differ by a cent)
        cast(round(cast(per_customer.lifetime_value as double) / per_customer.orders, 2) as decimal(18, 2)) as avg_order_value,
        cast(date_diff('day', per_customer.last_order_date, as_of.as_of_date) as bigint) as recency_days,
        ntile(5) over (order by per_customer.last_order_date, per_customer.customer_id) as recency_score,
        ntile(5) over (order by per_customer.orders, per_customer.customer_id) as frequency_score,
        ntile(5) over (order by per_customer.lifetime_value, per_customer.customer_id) as monetary_score
    from per_customer
    cross join as_of
),

final as (
    select
        customer_id,
        first_order_date,
        last_order_date,
        orders,
        units,
        lifetime_value,
        avg_order_value,
        recency_days,
        cast(recency_score as integer) as recency_score,
        cast(frequency_score as integer) as frequency_score,
        cast(monetary_score as integer) as monetary_score,
        {{ rfm_segment('recency_score', 'frequency_score', 'monetary_score') }} as rfm_segment
    from scored
)

select * from final
