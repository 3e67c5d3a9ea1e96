//! cgroup v2: a cgroup per pod and per container, resource limits, OOM detection, kill-all.
