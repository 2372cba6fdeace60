"""--download: checksums verified before use, via file:// URLs (tests never touch the network)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from torchship.data import DataConfig, load_data
from torchship.data import download as dl
from torchship.errors import DataError


@pytest.fixture
def mirror(tmp_path, mnist_dir, monkeypatch):
    """A local 'mirror' of MNIST's gz files, with SOURCES pointing at it and its real md5s."""
    files = mnist_dir(n_train=20, n_test=5, gz=True)
    table = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in sorted(files.glob("*.gz"))}
    monkeypatch.setitem(dl.SOURCES, "mnist", (files.as_uri() + "/", table))
    return files, table


def test_download_then_load(tmp_path, mirror):
    target = tmp_path / "cache" / "mnist"
    ds = load_data(DataConfig(name="mnist", path=str(target), download=True))
    assert len(ds.train) + len(ds.val) == 20
    assert len(ds.test) == 5
    assert sorted(p.name for p in target.iterdir()) == sorted(mirror[1])


def test_sha256_checksums_work_too(tmp_path, mirror, monkeypatch):
    files, table = mirror
    sha = {name: hashlib.sha256((files / name).read_bytes()).hexdigest() for name in table}
    monkeypatch.setitem(dl.SOURCES, "mnist", (files.as_uri() + "/", sha))
    assert len(dl.download("mnist", tmp_path / "sha")) == 4


def test_checksum_mismatch_is_refused_and_nothing_is_kept(tmp_path, mirror, monkeypatch):
    files, table = mirror
    bad = {**table, "train-labels-idx1-ubyte.gz": "0" * 32}
    monkeypatch.setitem(dl.SOURCES, "mnist", (files.as_uri() + "/", bad))
    target = tmp_path / "dl"
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz has md5 [0-9a-f]{32}, expected 0{32}"):
        dl.download("mnist", target)
    assert not (target / "train-labels-idx1-ubyte.gz").exists()
    assert not list(target.glob("*.part"))


def test_a_file_already_there_with_the_right_checksum_is_kept(tmp_path, mirror, monkeypatch):
    files, table = mirror
    target = tmp_path / "dl"
    dl.download("mnist", target)
    monkeypatch.setitem(dl.SOURCES, "mnist", ((tmp_path / "gone").as_uri() + "/", table))
    assert len(dl.download("mnist", target)) == 4  # no fetch: the mirror no longer exists


def test_unreachable_mirror(tmp_path, mirror):
    with pytest.raises(DataError, match="downloading file://.* failed.*download it by hand"):
        dl.download("mnist", tmp_path / "dl", base_url=(tmp_path / "nowhere").as_uri() + "/")


def test_files_present_means_no_download(mnist_dir, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("downloaded although the files were there")

    monkeypatch.setattr(dl, "download", fail)
    assert load_data(DataConfig(name="mnist", path=str(mnist_dir(gz=True)), download=True)).num_classes == 10


def test_default_root_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert dl.default_root("cifar10") == Path(tmp_path) / ".cache" / "torchship" / "cifar10"
    with pytest.raises(DataError, match=r"cifar10 is not at .*\.cache/torchship/cifar10.*--download"):
        load_data(DataConfig(name="cifar10"))


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_cifar_archive_is_extracted_and_read(tmp_path, cifar10_dir, monkeypatch):
    top = cifar10_dir(per_batch=4, n_test=3)
    members = {
        f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in (top / "cifar-10-batches-py").iterdir()
    }
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = mirror / "cifar-10-python.tar.gz"
    archive.write_bytes(_tar_gz(members))
    monkeypatch.setitem(
        dl.SOURCES,
        "cifar10",
        (mirror.as_uri() + "/", {archive.name: hashlib.md5(archive.read_bytes()).hexdigest()}),
    )
    ds = load_data(DataConfig(name="cifar10", path=str(tmp_path / "cache"), download=True))
    assert len(ds.test) == 3
    assert ds.labels[-1] == "truck"


def test_archive_escaping_its_folder_is_refused(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = mirror / "cifar-100-python.tar.gz"
    archive.write_bytes(_tar_gz({"../evil.txt": b"x"}))
    monkeypatch.setitem(
        dl.SOURCES,
        "cifar100",
        (mirror.as_uri() + "/", {archive.name: hashlib.sha256(archive.read_bytes()).hexdigest()}),
    )
    with pytest.raises(DataError, match="cannot be extracted"):
        dl.download("cifar100", tmp_path / "cache")
    assert not (tmp_path / "evil.txt").exists()


def test_checksum_table_is_well_formed():
    for name, (base, files) in dl.SOURCES.items():
        assert base.startswith(("https://", "http://")), name
        assert base.endswith("/"), name
        for file, checksum in files.items():
            assert len(checksum) in (32, 64), file
            int(checksum, 16)  # hex digits only
    assert sorted(dl.SOURCES) == ["cifar10", "cifar100", "fashion-mnist", "kmnist", "mnist"]
