-- One row per order line with the attributes its dimensions had when the order was placed: the
-- fact's surrogate keys were resolved as of the order timestamp, so joining on them gives the
-- customer's segment, the product's category and the store's region at that time.
with sales as (
    select * from {{ ref('stg_sales') }}
),

customers as (
    select * from {{ ref('stg_customers') }}
),

products as (
    select * from {{ ref('stg_products') }}
),

stores as (
    select * from {{ ref('stg_stores') }}
),

dates as (
    select * from {{ ref('stg_dates') }}
),

final as (
    select
        sales.order_id,
        sales.line_number,
        sales.order_date,
        sales.order_ts,
        dates.year_month,
        dates.year,
        dates.month,
        sales.channel,
        customers.customer_id,
        coalesce(customers.segment, 'unknown') as customer_segment,
        products.product_id,
        products.product_name,
        coalesce(products.category, 'unknown') as category,
        stores.store_id,
        stores.store_name,
        coalesce(stores.store_region, 'unknown') as store_region,
        sales.quantity,
        sales.gross_amount,
        sales.discount_amount,
        sales.net_amount,
        sales.cost_amount,
        sales.margin_amount
    from sales
    left join customers on sales.customer_sk = customers.customer_sk
    left join products on sales.product_sk = products.product_sk
    left join stores on sales.store_sk = stores.store_sk
    left join dates on sales.date_sk = dates.date_sk
)

select * from final
