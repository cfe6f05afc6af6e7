"""Flask edge: the JSON API under /api/v1, git over smart HTTP under /git, auth."""
