from tests.integration.fixtures_runtime import busybox_layer, sandbox  # noqa: F401
