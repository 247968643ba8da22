-- Stores, renamed only: one row per store_sk.
with source as (
    select * from {{ source('gold_retail', 'dim_store') }}
),

renamed as (
    select
        store_sk,
        store_id,
        store_name,
        city as store_city,
        region as store_region,
        country as store_country,
        store_type
    from source
)

select * from renamed
