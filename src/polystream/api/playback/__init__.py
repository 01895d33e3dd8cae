"""Viewing sessions: start, heartbeats, stop."""
