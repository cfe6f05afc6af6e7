"""The platform's agent: the one process of the control plane the API asks for what only
root may see or do (``paas.host.Host``), over a Unix socket only the platform's user reaches.
The API itself runs as that unprivileged user."""
