-- Order lines from the fact table, renamed and cast only.
with source as (
    select * from {{ source('gold_retail', 'fct_sales') }}
),

renamed as (
    select
        order_id,
        line_number,
        order_date,
        order_ts,
        date_sk,
        customer_sk,
        product_sk,
        store_sk,
        channel,
        cast(quantity as bigint) as quantity,
        cast(gross_amount as decimal(18, 2)) as gross_amount,
        cast(discount as decimal(18, 2)) as discount_amount,
        cast(net_amount as decimal(18, 2)) as net_amount,
        cast(cost_amount as decimal(18, 2)) as cost_amount,
        cast(margin_amount as decimal(18, 2)) as margin_amount
    from source
)

select * from renamed
