"""PySpark jobs: pure DataFrame -> DataFrame transformations plus entry points (scale-out issue)."""
