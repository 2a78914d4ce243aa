"""Packing build outputs and storing them in blob stores. Never imports Ray."""
