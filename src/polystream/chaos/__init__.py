"""Drills over real processes: worker processes frozen, throttled, stopped, while they drain a
backlog; each drill ends by reconciling the stores with the events (`polystream verify`).

The same code runs as a bounded test in `make test` and as a long run from the command line
(`polystream chaos ...`)."""
