"""OCI export of layer dirs: the layout, the config, digests, and whiteouts as OCI writes them.

Checked here by reading the archive back with ``tarfile``; ``skopeo`` and ``umoci`` read real
exports in tests/integration/test_oci_export.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from paas.errors import InvalidInput, PlatformError
from paas.images.layers import LayerStore
from paas.images.oci import DEFAULT_PATH, OciImage, export_oci

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="whiteouts and trusted.* xattrs need root")


def _layer(store: LayerStore, files: dict[str, str], fill: Any = None) -> str:
    root = store.new_dir()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    if fill is not None:
        fill(root)
    return store.commit(root)


class Archive:
    """An exported archive read back."""

    def __init__(self, path: Path) -> None:
        with tarfile.open(path) as tar:
            self.names = tar.getnames()
            self.files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]

    def json(self, name: str) -> Any:
        return json.loads(self.files[name])

    def blob(self, digest: str) -> bytes:
        return self.files[f"blobs/sha256/{digest.removeprefix('sha256:')}"]

    @property
    def manifest(self) -> Any:
        (entry,) = self.json("index.json")["manifests"]
        return json.loads(self.blob(entry["digest"]))

    @property
    def config(self) -> Any:
        return json.loads(self.blob(self.manifest["config"]["digest"]))

    def layer(self, index: int) -> tarfile.TarFile:
        data = gzip.decompress(self.blob(self.manifest["layers"][index]["digest"]))
        return tarfile.open(fileobj=io.BytesIO(data))


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    return LayerStore(tmp_path / "layers")


def test_layout_index_manifest_and_config(store: LayerStore, tmp_path: Path) -> None:
    base = _layer(store, {"etc/motd": "hello\n", "usr/bin/tool": "#!/bin/sh\n"})
    app = _layer(store, {"app/main.py": "print('hi')\n"})
    image = OciImage(
        layers=(base, app),
        env={"GREETING": "hi"},
        workdir="/app",
        user="app",
        command=("python3", "main.py"),
        entrypoint=("/usr/bin/tini", "--"),
        exposed_port=8080,
        labels={"org.example.v": "1"},
    )
    result = export_oci(image, store, tmp_path / "out/image.tar", ref="v3")
    archive = Archive(tmp_path / "out/image.tar")
    assert archive.names[:4] == ["oci-layout", "index.json", "blobs", "blobs/sha256"]
    assert archive.json("oci-layout") == {"imageLayoutVersion": "1.0.0"}
    (entry,) = archive.json("index.json")["manifests"]
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "v3"}
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["digest"] == result.manifest_digest
    for name, data in archive.files.items():
        if name.startswith("blobs/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    manifest = archive.manifest
    assert manifest["config"]["digest"] == result.config_digest
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ] * 2
    config = archive.config
    assert config["os"] == "linux" and config["architecture"]
    assert config["config"] == {
        "Env": [f"PATH={DEFAULT_PATH}", "GREETING=hi"],
        "WorkingDir": "/app",
        "User": "app",
        "Cmd": ["python3", "main.py"],
        "Entrypoint": ["/usr/bin/tini", "--"],
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"org.example.v": "1"},
    }
    diff_ids = [
        "sha256:" + hashlib.sha256(gzip.decompress(archive.blob(layer["digest"]))).hexdigest()
        for layer in manifest["layers"]
    ]
    assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
    assert list(result.diff_ids) == diff_ids
    assert result.size == (tmp_path / "out/image.tar").stat().st_size
    assert archive.layer(1).getnames() == ["app", "app/main.py"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "image.tar"]


def test_export_is_deterministic(store: LayerStore, tmp_path: Path) -> None:
    layer = _layer(store, {"a/b": "x\n"})
    image = OciImage(layers=(layer,))
    export_oci(image, store, tmp_path / "one.tar")
    export_oci(image, store, tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    config = Archive(tmp_path / "one.tar").config["config"]
    assert config == {"Env": [f"PATH={DEFAULT_PATH}"], "WorkingDir": "/"}


def test_entries_keep_types_modes_owners_and_links(store: LayerStore, tmp_path: Path) -> None:
    def fill(root: Path) -> None:
        (root / "bin/tool").chmod(0o755)
        os.symlink("tool", root / "bin/alias")
        os.link(root / "bin/tool", root / "bin/tool2")
        os.setxattr(root / "bin/tool", "user.note", b"kept")
        if ROOT:
            os.chown(root / "bin/tool", 1000, 1001)

    layer = _layer(store, {"bin/tool": "#!/bin/sh\n"}, fill)
    export_oci(OciImage(layers=(layer,)), store, tmp_path / "image.tar")
    tar = Archive(tmp_path / "image.tar").layer(0)
    members = {m.name: m for m in tar.getmembers()}
    assert list(members) == ["bin", "bin/alias", "bin/tool", "bin/tool2"]
    tool, alias, tool2 = members["bin/tool"], members["bin/alias"], members["bin/tool2"]
    assert tool.isfile() and tool.mode == 0o755 and tool.uname == "" and tool.gname == ""
    assert tool.pax_headers.get("SCHILY.xattr.user.note") == "kept"
    assert (tool.uid, tool.gid) == ((1000, 1001) if ROOT else (os.getuid(), os.getgid()))
    assert alias.issym() and alias.linkname == "tool"
    assert tool2.islnk() and tool2.linkname == "bin/tool"


@needs_root
def test_whiteouts_and_opaque_dirs_become_oci_markers(store: LayerStore, tmp_path: Path) -> None:
    def fill(root: Path) -> None:
        os.mknod(root / "etc/gone", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
        os.mknod(root / "top-gone", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
        (root / "var/cache").mkdir(parents=True)
        os.setxattr(root / "var/cache", "trusted.overlay.opaque", b"y")
        os.setxattr(root / "etc", "trusted.overlay.origin", b"\x00bookkeeping")

    layer = _layer(store, {"etc/kept": "1\n"}, fill)
    export_oci(OciImage(layers=(layer,)), store, tmp_path / "image.tar")
    tar = Archive(tmp_path / "image.tar").layer(0)
    members = {m.name: m for m in tar.getmembers()}
    assert list(members) == [
        "etc", "etc/.wh.gone", "etc/kept", ".wh.top-gone", "var", "var/cache",
        "var/cache/.wh..wh..opq",
    ]  # fmt: skip
    for name in ("etc/.wh.gone", ".wh.top-gone", "var/cache/.wh..wh..opq"):
        assert members[name].isfile() and members[name].size == 0
    assert not [m for m in members.values() if m.ischr()]
    assert not [m for m in members.values() if any("trusted" in k for k in m.pax_headers)]


@needs_root
def test_redirected_dirs_cannot_be_exported(store: LayerStore, tmp_path: Path) -> None:
    def fill(root: Path) -> None:
        (root / "moved").mkdir()
        os.setxattr(root / "moved", "trusted.overlay.redirect", b"/old")

    layer = _layer(store, {}, fill)
    with pytest.raises(PlatformError, match="redirect"):
        export_oci(OciImage(layers=(layer,)), store, tmp_path / "image.tar")
    assert not (tmp_path / "image.tar").exists()
    assert os.listdir(tmp_path) == ["layers"]


def test_bad_input(store: LayerStore, tmp_path: Path) -> None:
    layer = _layer(store, {"a": "1"})
    with pytest.raises(InvalidInput, match="reference"):
        export_oci(OciImage(layers=(layer,)), store, tmp_path / "x.tar", ref="bad ref/")
    with pytest.raises(InvalidInput, match="at least one layer"):
        export_oci(OciImage(layers=()), store, tmp_path / "x.tar")
    with pytest.raises(PlatformError, match="missing"):
        export_oci(OciImage(layers=("f" * 64,)), store, tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()
