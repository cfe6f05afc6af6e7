"""ImageStore: manifests named by their content, saved and loaded as JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from paas.errors import InvalidInput, NotFound
from paas.images.store import ImageStore, image_id
from paas.model import Image

LAYERS = ("a" * 64, "b" * 64, "c" * 64)


def test_save_sets_the_content_id_and_load_returns_the_image(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    saved = store.save(Image(id="", layers=LAYERS, process_types={"web": "gunicorn app:app"}))
    assert len(saved.id) == 64
    assert store.exists(saved.id)
    assert store.load(saved.id) == saved
    assert saved.layers == LAYERS and saved.process_types == {"web": "gunicorn app:app"}


def test_id_depends_on_content_only() -> None:
    one = Image(id="x", layers=LAYERS, process_types={"web": "a", "worker": "b"}, env={"K": "v"})
    same = Image(id="y", layers=LAYERS, process_types={"worker": "b", "web": "a"}, env={"K": "v"})
    assert image_id(one) == image_id(same)
    for other in (
        Image(id="", layers=LAYERS[:2], process_types=one.process_types, env=one.env),
        Image(id="", layers=LAYERS, process_types={"web": "a"}, env=one.env),
        Image(id="", layers=LAYERS, process_types=one.process_types, env={"K": "w"}),
        Image(id="", layers=LAYERS[::-1], process_types=one.process_types, env=one.env),
    ):
        assert image_id(other) != image_id(one)


def test_saving_twice_keeps_one_manifest(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    first = store.save(Image(id="", layers=LAYERS))
    second = store.save(Image(id="", layers=LAYERS))
    assert first == second
    assert [p.name for p in (tmp_path / "images").iterdir()] == [f"{first.id}.json"]


def test_unknown_and_invalid_ids(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    with pytest.raises(NotFound):
        store.load("0" * 64)
    with pytest.raises(InvalidInput):
        store.load("../../etc/passwd")
    assert not store.exists("../x")
