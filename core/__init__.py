"""gantry: build a merged commit, store it, replicate it, roll it out. See README.md."""
