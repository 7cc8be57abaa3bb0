"""Files cached by name in Keras' cache (`<KERAS_HOME>/lucidtl/<file>`) are checked against the manifest's sha256
before keras.utils.get_file is asked for them: get_file deletes a cached file with another digest and downloads
again, so the user's file would be lost and the error would point at a file no longer there (issue 26, item 6).
No test here has a network: get_file is either forbidden or runs on a file that is already right."""
import hashlib

import keras
import pytest

import lucid_graphs as lg
from lucidtl import render as render_cli
from lucidtl.errors import WeightsError
from lucidtl.models import lucid_zoo
from lucidtl.models import weights as weights_mod
from conftest import cli_exit

WRONG = b"someone else's file, not the archive"


def _no_download(*a, **k):
    pytest.fail("keras.utils.get_file was called for a cached file with another sha256")


def test_imagenet_archive_with_another_sha256_is_kept_and_named(tmp_path, monkeypatch):
    monkeypatch.setattr(keras.utils, "get_file", _no_download)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    target = tmp_path / "lucidtl" / "inception_v1_2016_08_28.tar.gz"
    target.parent.mkdir()
    target.write_bytes(WRONG)
    expected = weights_mod.manifest("inception_v1")["sha256"]
    with pytest.raises(WeightsError) as e:
        weights_mod.build_model("inception_v1", weights="imagenet")
    text = str(e.value)
    assert "\n" not in text
    assert f"{target} has sha256 {hashlib.sha256(WRONG).hexdigest()[:12]}..., not the manifest's {expected}" in text
    assert "replace it with the file from http" in text and "remove it to download it again" in text
    assert target.read_bytes() == WRONG  # the user's file is still there, untouched


def test_render_cli_says_it_in_one_line_and_keeps_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(keras.utils, "get_file", _no_download)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    target = tmp_path / "keras" / "lucidtl" / "inception_v1_2016_08_28.tar.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(WRONG)
    code, captured = cli_exit(render_cli.main, ["--weights", "imagenet", "--layer", "Mixed_3b", "--steps", "1",
                                                "--out", str(tmp_path / "o")], capsys)
    err = captured.err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and f"{target} has sha256" in err
    assert target.read_bytes() == WRONG and not (tmp_path / "o").exists()


@pytest.fixture
def pinned_zoo(tmp_path, monkeypatch):
    """A zoo entry `lucid:Tiny` whose manifest pins the sha256 of a tiny frozen graph, and Keras' cache in tmp."""
    good = lg.write_pb(lg.tiny_saved_graph(), tmp_path / "tiny_source.pb")
    digest = hashlib.sha256(open(good, "rb").read()).hexdigest()
    data = dict(lg.TINY_META, model_path="https://example.invalid/Tiny.pb", url="https://example.invalid/Tiny.pb",
                sha256=digest, is_BGR=False)
    real = lucid_zoo.zoo_manifest
    monkeypatch.setattr(lucid_zoo, "zoo_manifest", lambda name: data if name == "Tiny" else real(name))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    target = tmp_path / "keras" / "lucidtl" / "Tiny.pb"
    target.parent.mkdir(parents=True)
    return good, digest, target


def test_zoo_graph_with_another_sha256_is_kept_and_named(pinned_zoo, monkeypatch):
    _, digest, target = pinned_zoo
    monkeypatch.setattr(keras.utils, "get_file", _no_download)
    target.write_bytes(WRONG)
    with pytest.raises(WeightsError) as e:
        weights_mod.build_model("lucid:Tiny")
    text = str(e.value)
    assert f"{target} has sha256 {hashlib.sha256(WRONG).hexdigest()[:12]}..., not the manifest's {digest}" in text
    assert "https://example.invalid/Tiny.pb" in text and "\n" not in text
    assert target.read_bytes() == WRONG


def test_zoo_graph_with_the_right_sha256_is_used_offline(pinned_zoo):
    """The check lets the right file through: Keras' own get_file finds it valid and downloads nothing
    (example.invalid does not resolve)."""
    good, _, target = pinned_zoo
    target.write_bytes(open(good, "rb").read())
    net, info = weights_mod.build_model("lucid:Tiny")
    assert info.weights_source == "https://example.invalid/Tiny.pb"
    assert "mixed" in [row[0] for row in net.lucid_graph.listed()]
    assert target.read_bytes() == open(good, "rb").read()
