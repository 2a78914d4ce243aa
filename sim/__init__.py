"""A discrete-event simulator of a gantry fleet, with no I/O, that runs gantry's own rollout and
distribution policies (`actors.rollout.dc_rollout`, `waves`, `activation`, `tracker`, and the
downloader's `chunkplan`) over a model of the network and the control plane. `run.simulate`."""
