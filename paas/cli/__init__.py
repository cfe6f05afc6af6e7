"""The ``paas`` command: Heroku/Dokku-style ``topic:verb`` commands over the JSON API."""
