"""The HTTP router: a private nginx instance whose per-app config the platform writes."""
