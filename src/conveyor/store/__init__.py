"""Stores: queryable metadata (SQL) apart from bulk bytes (fsspec)."""
