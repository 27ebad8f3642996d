"""Monitoring: reference profiles, drift detection, reports, alerts and retraining triggers."""
