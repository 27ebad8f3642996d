"""Data stage: sources, schema contract, dataset versions, splits."""
