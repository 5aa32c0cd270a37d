"""The example workflows' picture goes into ComfyUI's input folder when the pack lists its
nodes (so a template runs as loaded), never over a file the user has."""

import asyncio
import errno
import logging

import pytest

from conftest import ROOT

HARBOUR = ROOT / "web" / "examples" / "harbour.png"


@pytest.fixture
def input_dir(pack, tmp_path, monkeypatch):
    import folder_paths

    folder = tmp_path / "input"
    monkeypatch.setattr(folder_paths, "get_input_directory", lambda: str(folder))
    return folder


def test_listing_the_nodes_puts_the_example_picture_into_input(input_dir):
    from emotion_director_pack.nodes import EmotionDirectorExtension

    asyncio.run(EmotionDirectorExtension().get_node_list())
    assert (input_dir / "harbour.png").read_bytes() == HARBOUR.read_bytes()
    assert sorted(p.name for p in input_dir.iterdir()) == ["harbour.png"]  # no temp file left


def test_a_users_file_of_that_name_is_never_touched(input_dir):
    from emotion_director_pack.nodes.example_inputs import install_example_inputs

    input_dir.mkdir()
    (input_dir / "harbour.png").write_bytes(b"the user's own harbour")
    assert install_example_inputs() == []
    assert (input_dir / "harbour.png").read_bytes() == b"the user's own harbour"
    assert install_example_inputs() == []  # and again: idempotent


def test_a_dangling_symlink_of_that_name_is_left_alone(input_dir):
    from emotion_director_pack.nodes.example_inputs import install_example_inputs

    input_dir.mkdir()
    (input_dir / "harbour.png").symlink_to(input_dir / "gone.png")
    assert install_example_inputs() == []
    assert (input_dir / "harbour.png").is_symlink()


def test_an_unwritable_input_folder_costs_a_warning_only(input_dir, monkeypatch, caplog):
    from emotion_director_pack.nodes import example_inputs

    real_copyfile = example_inputs.shutil.copyfile

    def read_only(*args, **kwargs):  # we run as root: chmod would not stop the write
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(example_inputs.shutil, "copyfile", read_only)
    with caplog.at_level(logging.WARNING):
        assert example_inputs.install_example_inputs() == []
    assert "could not copy the example picture harbour.png" in caplog.text
    assert not (input_dir / "harbour.png").exists()
    assert [p.name for p in input_dir.iterdir()] == []  # the temp file is gone too
    monkeypatch.setattr(example_inputs.shutil, "copyfile", real_copyfile)
    assert example_inputs.install_example_inputs() == [input_dir / "harbour.png"]
