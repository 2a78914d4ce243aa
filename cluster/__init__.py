"""The local multi-region stack: `gantry up/down/status/token`."""
