from tests.integration.fixtures_runtime import busybox_layer, sandbox  # noqa: F401
from tests.integration.test_build_python import (  # noqa: F401  (fixtures)
    builder_fixture,
    new_layers_fixture,
)
from tests.integration.test_images_stack import (  # noqa: F401  (fixtures)
    layers_fixture,
    runtime_fixture,
    stack_fixture,
)
