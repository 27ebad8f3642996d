"""Model registry: versions, aliases, approval, rollback, lineage."""
