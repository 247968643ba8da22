-- Year-over-year revenue growth per month.
-- Grain: one row per year_month that has sales. prior_year_revenue is the same month one year
-- earlier (null when there were no sales then); growth_pct = (revenue / prior - 1) * 100.
-- Run: lakehouse query --file assets/retail/queries/year_over_year_growth.sql
with monthly as (
    select d.year, d.month, d.year_month, sum(f.net_amount) as revenue
    from gold_retail.fct_sales as f
    join gold_retail.dim_date as d on d.date_sk = f.date_sk
    group by d.year, d.month, d.year_month
)
select
    m.year_month,
    m.revenue,
    p.revenue as prior_year_revenue,
    round((m.revenue / p.revenue - 1) * 100, 2) as growth_pct
from monthly as m
left join monthly as p on p.year = m.year - 1 and p.month = m.month
order by m.year_month
