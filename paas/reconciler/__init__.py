"""Observe what runs, plan (a pure function) and apply, so desired state becomes real."""
