-- Top 10 products by margin (net amount minus cost at the unit cost in effect when sold).
-- Grain: one row per product (its current name and category).
-- Run: lakehouse query --file assets/retail/queries/top_products_by_margin.sql
select
    cur.product_id,
    cur.name,
    cur.category,
    sum(f.quantity) as units,
    sum(f.net_amount) as revenue,
    sum(f.margin_amount) as margin,
    round(sum(f.margin_amount) / nullif(sum(f.net_amount), 0) * 100, 1) as margin_pct
from gold_retail.fct_sales as f
join gold_retail.dim_product as v on v.product_sk = f.product_sk
join gold_retail.dim_product as cur on cur.product_id = v.product_id and cur.is_current
group by cur.product_id, cur.name, cur.category
order by margin desc, cur.product_id
limit 10
