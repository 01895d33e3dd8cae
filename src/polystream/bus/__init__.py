"""The event bus: Kafka in the real stack, an in-memory broker in the embedded mode."""
