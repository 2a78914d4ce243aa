"""Telling people and GitHub what became of builds and deployments: which events a status change
makes, who subscribed to them, and how each kind of destination is sent to."""
