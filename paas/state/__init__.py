"""Desired state and event streams, kept in Redis."""
