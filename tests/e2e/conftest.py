from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.e2e.platform_fixture import Platform, new_platform
from tests.stack_cache import seed_platform_root


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    if os.geteuid() != 0:
        pytest.skip("the platform needs root")
    p = new_platform("198.19.240.0/24")
    try:
        seed_platform_root(p.root)
        p.start()
        yield p
    finally:
        p.stop()
        p.uninstall()
        shutil.rmtree(p.root, ignore_errors=True)
        if not os.environ.get("PAAS_E2E_KEEP_LOG"):
            p.log_path.unlink(missing_ok=True)
