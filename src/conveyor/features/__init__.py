"""Feature stage: preprocessing from config, fitted and saved together with the estimator."""
