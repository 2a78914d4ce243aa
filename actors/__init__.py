"""Build scheduler, build task and sandbox, heartbeat monitor, and the Redis state store."""
