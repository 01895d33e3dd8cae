"""Accounts: registration, profile, preferences."""
