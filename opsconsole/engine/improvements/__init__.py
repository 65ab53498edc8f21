"""The improvement queue: a self-building agent's proposals, reviewed, deployed, watched, kept or
rolled back. `protocol` defines the agent's tools; `model` the queue's records and settings."""
