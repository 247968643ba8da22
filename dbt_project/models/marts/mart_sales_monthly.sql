-- Sales per month, region and category, rolled up from the daily mart.
with daily as (
    select * from {{ ref('mart_sales_daily') }}
),

final as (
    select
        cast({{ dbt.date_trunc('month', 'order_date') }} as date) as month_start,
        {{ year_month('order_date') }} as year_month,
        store_region,
        category,
        cast(sum(orders) as bigint) as orders,
        cast(sum(units) as bigint) as units,
        cast(sum(revenue) as decimal(18, 2)) as revenue,
        cast(sum(margin) as decimal(18, 2)) as margin
    from daily
    group by 1, 2, 3, 4
)

select * from final
