"""paas: a git-push deployment platform (build, run and route apps in runc containers)."""
