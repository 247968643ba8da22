-- Customer versions (SCD2), renamed only: one row per customer_sk.
with source as (
    select * from {{ source('gold_retail', 'dim_customer') }}
),

renamed as (
    select
        customer_sk,
        customer_id,
        segment,
        city as customer_city,
        region as customer_region,
        country as customer_country,
        signup_date,
        valid_from,
        valid_to,
        is_current,
        is_inferred
    from source
)

select * from renamed
