"""The server's routes: health (no auth), model info and metrics, predictions."""
