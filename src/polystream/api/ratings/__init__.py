"""A user's rating of a title."""
