"""Read-your-writes: the status of a published event in each store."""
