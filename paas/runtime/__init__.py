"""Containers: OCI bundles over overlay layers, runc, supervision, cgroup limits and logs."""
