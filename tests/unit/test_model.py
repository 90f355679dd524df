import pytest

from baking.model import ModelError, resolve_model


def test_local_hugging_face_folder_resolves_to_itself(tiny_model):
    assert resolve_model(str(tiny_model)) == tiny_model


def test_unknown_reference_names_the_accepted_forms(tmp_path):
    with pytest.raises(ModelError, match="smollm2-135m-instruct"):
        resolve_model("gpt-17")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))
