-- Units, revenue and margin per product over the whole lake, ranked within its category.
with lines as (
    select * from {{ ref('int_sales_enriched') }}
),

per_product as (
    select
        product_id,
        max(product_name) as product_name,
        max(category) as category,
        cast(count(distinct order_id) as bigint) as orders,
        cast(sum(quantity) as bigint) as units,
        cast(sum(net_amount) as decimal(18, 2)) as revenue,
        cast(sum(margin_amount) as decimal(18, 2)) as margin
    from lines
    where product_id is not null
    group by product_id
),

final as (
    select
        *,
        -- divided and rounded as doubles on every engine (Trino would divide decimals at scale 2)
        cast(case when revenue = 0 then null else round(cast(margin as double) / cast(revenue as double), 4) end as decimal(9, 4)) as margin_ratio,
        cast(rank() over (partition by category order by revenue desc, product_id) as integer) as rank_in_category
    from per_product
)

select * from final
