"""Docker deployments: a service's containers replaced by a strategy, with a rollback image kept.

`model` is plain data (the configuration's `services:` and a deploy's report); `dockertarget` speaks
to a Docker engine through the docker SDK (imported lazily, every call in a thread with a timeout);
`recreate` is the seed 003 strategy; `pipeline` runs a whole deploy (test and build commands, a
backup, the strategy) and returns the report with the seed's exit code; `phase` runs a plan phase's
deploy for the runner, `revert` brings the previous version back when that phase's rollout is rolled
back or aborted, and `aimed` gives a blue_green phase's deploy its checks on the new colour
(before the switch, and its guards during keep_old). Only containers carrying the console's labels
are ever stopped or removed.
"""
