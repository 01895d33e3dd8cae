"""The read side: queries, ports and adapters of the public read API."""
