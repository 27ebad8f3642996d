"""Evaluation stage: metrics, gates, champion/challenger, reports."""
