"""Celery edge: the app, thin tasks calling ``paas.services``, and the queue that enqueues them."""
