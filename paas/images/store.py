"""Image manifests on disk.

``ImageStore`` owns ``images_dir``: one JSON manifest per image (``paas.model.Image``) as
``<id>.json``. The id is the sha256 of the image's canonical JSON (layers, process types,
env, workdir), so equal images share one id and a manifest never changes once written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from paas.errors import InvalidInput, NotFound
from paas.images.layers import DIGEST_RE
from paas.model import Image


def _manifest(image: Image) -> dict[str, Any]:
    data: dict[str, Any] = {
        "layers": list(image.layers),
        "process_types": dict(image.process_types),
        "env": dict(image.env),
        "workdir": image.workdir,
    }
    # Only when set, so the ids of images that have none stay what they were.
    optional = {"port": image.port, "user": image.user, "command": image.command,
                "labels": dict(image.labels) or None}
    data.update({k: (list(v) if isinstance(v, tuple) else v)
                 for k, v in optional.items() if v is not None})
    return data


def _canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def image_id(image: Image) -> str:
    """sha256 of the canonical JSON of what the image is (its ``id`` field aside)."""
    return hashlib.sha256(_canonical(_manifest(image))).hexdigest()


class ImageStore:
    """Image manifests as ``images_dir/<id>.json``."""

    def __init__(self, images_dir: Path) -> None:
        self.images_dir = images_dir

    def save(self, image: Image) -> Image:
        """Store ``image`` under its content id and return it with that id set.

        The ``id`` passed in is ignored (pass ``""``): the content decides it.
        """
        stored = replace(image, id=image_id(image), layers=tuple(image.layers))
        target = self.images_dir / f"{stored.id}.json"
        if target.is_file():
            return stored
        self.images_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".new-", dir=self.images_dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_canonical(_manifest(stored)))
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return stored

    def load(self, image_id: str) -> Image:
        if not DIGEST_RE.match(image_id):
            raise InvalidInput(f"Invalid image id {image_id!r}: expected 64 hex digits.")
        try:
            data = json.loads((self.images_dir / f"{image_id}.json").read_text())
        except FileNotFoundError:
            raise NotFound(f"Image {image_id} does not exist.") from None
        user, command = data.get("user"), data.get("command")
        return Image(
            id=image_id,
            layers=tuple(data["layers"]),
            process_types=dict(data["process_types"]),
            env=dict(data["env"]),
            workdir=data["workdir"],
            port=data.get("port"),
            user=None if user is None else (int(user[0]), int(user[1])),
            command=None if command is None else tuple(command),
            labels=dict(data.get("labels") or {}),
        )

    def exists(self, image_id: str) -> bool:
        return bool(DIGEST_RE.match(image_id)) and (self.images_dir / f"{image_id}.json").is_file()
