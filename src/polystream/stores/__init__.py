"""What the write side (`sinks/`) and the read side (`reads/`) share about a store: its client
options, how its driver errors become `store_errors`, and its layout (collection names, the
catalog's write plan). Neither side's adapters live here, so the API can read through `reads/`
without importing a sink (the import contracts in pyproject.toml)."""
