"""The rollout's rules as plain functions and classes, with no Ray, Redis or clock of their own:
waves and the health gate, stage-then-activate, one datacenter's rollout, the reconcile that
decides a datacenter's next step, the tracker and the coordinator's memory of hosts. The
coordinator (`gantry.actors.rollout`) applies them to Redis, the simulator (`gantry.sim`) to
its model."""
