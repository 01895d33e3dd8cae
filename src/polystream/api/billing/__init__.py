"""Subscriptions and payments."""
