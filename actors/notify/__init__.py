"""The readers of the events stream: notifications and continuous deployment."""
