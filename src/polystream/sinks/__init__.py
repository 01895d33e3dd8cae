"""S2 (and S3): consumers that persist events in the store that fits them."""
