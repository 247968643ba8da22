-- The calendar, renamed only: one row per day.
with source as (
    select * from {{ source('gold_retail', 'dim_date') }}
),

renamed as (
    select
        date_sk,
        date as calendar_date,
        year_month,
        year,
        month,
        quarter,
        fiscal_year,
        is_weekend
    from source
)

select * from renamed
