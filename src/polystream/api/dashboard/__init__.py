"""The operators' dashboard: one HTML page, one script, one stylesheet, a live SSE feed."""
