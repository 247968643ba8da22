-- Sales by store region and month.
-- Grain: one row per (region, year_month). Revenue = net amount of the order lines.
-- Run: lakehouse query --file assets/retail/queries/sales_by_region_and_month.sql
select
    s.region,
    d.year_month,
    count(distinct f.order_id) as orders,
    sum(f.quantity) as units,
    sum(f.net_amount) as revenue,
    sum(f.margin_amount) as margin
from gold_retail.fct_sales as f
join gold_retail.dim_store as s on s.store_sk = f.store_sk
join gold_retail.dim_date as d on d.date_sk = f.date_sk
group by s.region, d.year_month
order by d.year_month, revenue desc
