-- One row per order with its customer and value: the basis of lifetime value and RFM.
with lines as (
    select * from {{ ref('int_sales_enriched') }}
),

final as (
    select
        customer_id,
        order_id,
        min(order_date) as order_date,
        cast(sum(quantity) as bigint) as units,
        cast(sum(net_amount) as decimal(18, 2)) as order_value
    from lines
    where customer_id is not null
    group by customer_id, order_id
)

select * from final
