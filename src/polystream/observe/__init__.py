"""What the operators' dashboard shows, collected from whichever platform runs.

`Observatory` reads the bus (produced offsets, consumer lag), each store (health, size), the
live rankings, the catalogue and the audit trail through small ports; `embedded.py` and
`stack.py` give it the in-memory or the real adapters. `history.Recorder` turns successive
snapshots into rates and stall warnings. Nothing here knows about HTTP.
"""
