"""polystream: a streaming-platform backend on Kafka and polyglot persistence."""

__version__ = "0.1.0"
