"""Feature flags and runtime variables (operators)."""
