"""Training stage: candidate estimators, tuning, selection."""
