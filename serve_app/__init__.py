"""The HTTP API on Ray Serve."""
