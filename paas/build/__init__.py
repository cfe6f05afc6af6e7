"""Builds: turning an app's source into an image layer (buildpacks) in build containers."""
