"""paas stacks lists the built stacks; stacks:build refuses a bad suite name; images:gc
keeps every layer a kept release or a stack uses."""

from __future__ import annotations

import json

import pytest

from paas.images.store import ImageStore
from paas.settings import Settings
from paas.wiring import services
from tests.e2e.platform_fixture import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def test_stacks_and_garbage_collection(platform: Platform) -> None:
    listed = json.loads(platform.cli("stacks", "--json").stdout)["stacks"]
    (bookworm,) = [s for s in listed if s["name"] == "bookworm"]
    assert "python3" in bookworm["packages"] and len(bookworm["layers"]) == 2

    bad = platform.cli("stacks:build", "Bad Name")
    assert bad.returncode == 2 and "stack name" in bad.stderr.lower(), bad.stderr

    gc = platform.cli("images:gc", "--json")
    assert gc.returncode == 0, gc.stderr
    settings = Settings.from_env(platform.env)
    store, images = services(settings).store, ImageStore(settings.images_dir)
    used = set(bookworm["layers"])
    for app in store.app_names():
        for release in store.releases(app)[-10:]:
            used |= set(images.load(release.image_id).layers)
    assert not used & set(json.loads(gc.stdout)["removed"])
    assert all((settings.layers_dir / d).is_dir() for d in used)
