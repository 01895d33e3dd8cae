"""Metrics, structured logs and trace context shared by the API, the workers and the CLI."""
