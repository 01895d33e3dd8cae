"""Domain layer: the event contract and pure logic, with no I/O."""
