-- Product versions (SCD2), renamed only: one row per product_sk.
with source as (
    select * from {{ source('gold_retail', 'dim_product') }}
),

renamed as (
    select
        product_sk,
        product_id,
        sku,
        name as product_name,
        brand,
        category,
        cast(list_price as decimal(18, 2)) as list_price,
        is_current
    from source
)

select * from renamed
