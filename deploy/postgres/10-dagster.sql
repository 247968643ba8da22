-- A separate database for Dagster's run/event/schedule storage; POSTGRES_DB holds the Iceberg catalog.
CREATE DATABASE dagster;
