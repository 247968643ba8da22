-- Year-over-year growth per month and region: each month's revenue against the same month a
-- year earlier (null when the lake has no such month yet).
with monthly as (
    select
        month_start,
        year_month,
        store_region,
        cast(sum(revenue) as decimal(18, 2)) as revenue
    from {{ ref('mart_sales_monthly') }}
    group by 1, 2, 3
),

final as (
    select
        current_month.month_start,
        current_month.year_month,
        current_month.store_region,
        current_month.revenue,
        prior_year.revenue as prior_year_revenue,
        {{ yoy_growth_pct('current_month.revenue', 'prior_year.revenue') }} as yoy_growth_pct
    from monthly as current_month
    left join monthly as prior_year
        on prior_year.store_region = current_month.store_region
        and prior_year.month_start = cast({{ dbt.dateadd('year', -1, 'current_month.month_start') }} as date)
)

select * from final
