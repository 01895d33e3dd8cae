"""/me: the caller's own account, read from the store that keeps it."""
