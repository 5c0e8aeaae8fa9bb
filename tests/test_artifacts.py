from pathlib import Path

import pytest

from qwen3ops import artifacts


def test_publish_writes_manifest_with_sha256_and_sizes(tmp_path: Path) -> None:
    dest = tmp_path / "a"
    with artifacts.publish(dest, {"kind": "test"}) as tmp:
        (tmp / "x.txt").write_text("hello")
    manifest = artifacts.read_manifest(dest)
    assert manifest["kind"] == "test" and manifest["created"].endswith("Z")
    assert manifest["files"]["x.txt"] == {
        "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "size": 5}
    assert artifacts.verify(dest) == []


def test_interrupted_publish_leaves_nothing_usable(tmp_path: Path) -> None:
    dest = tmp_path / "a"
    with pytest.raises(KeyboardInterrupt), artifacts.publish(dest, {"kind": "test"}) as tmp:
        (tmp / "half.bin").write_bytes(b"x" * 10)
        raise KeyboardInterrupt
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_rebuild_keeps_the_previous_artifact(tmp_path: Path) -> None:
    dest = tmp_path / "a"
    with artifacts.publish(dest, {"kind": "test", "v": 1}) as tmp:
        (tmp / "x.txt").write_text("one")
    with pytest.raises(RuntimeError), artifacts.publish(dest, {"kind": "test", "v": 2}) as tmp:
        (tmp / "x.txt").write_text("tw")
        raise RuntimeError("disk full")
    assert (dest / "x.txt").read_text() == "one" and artifacts.read_manifest(dest)["v"] == 1


def test_verify_reports_damage(tmp_path: Path) -> None:
    dest = tmp_path / "a"
    with artifacts.publish(dest, {"kind": "test"}) as tmp:
        (tmp / "x.txt").write_text("hello")
    (dest / "x.txt").write_text("HELLO")
    assert artifacts.verify(dest) == ["x.txt: sha256 mismatch"]
    (dest / "x.txt").unlink()
    assert artifacts.verify(dest) == ["x.txt: missing"]
