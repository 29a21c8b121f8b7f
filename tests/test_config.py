import pytest

from repotune.config import load_config
from repotune.errors import UserError


def test_defaults_without_file():
    cfg = load_config()
    assert cfg.model.name == "gemma-3-270m"
    assert cfg.mine.max_changed_lines == 25


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  max_steps: 7\nmine:\n  exclude: ['*.md']\n")
    cfg = load_config(p, ["train.lora_r=4", "mine.max_changed_lines=null", "model.name=foo/bar"])
    assert cfg.train.max_steps == 7
    assert cfg.train.lora_r == 4
    assert cfg.mine.max_changed_lines is None
    assert cfg.mine.exclude == ["*.md"]
    assert cfg.model.name == "foo/bar"


@pytest.mark.parametrize(
    "text, field",
    [
        ("train:\n  max_steps: -3\n", "train.max_steps"),
        ("train:\n  max_stepz: 3\n", "train.max_stepz"),
        ("train:\n  max_steps: many\n", "train.max_steps"),
        ("bogus: {}\n", "bogus"),
        ("model:\n  dtype: int3\n", "model.dtype"),
    ],
)
def test_invalid_field_names_the_field(tmp_path, text, field):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(UserError) as err:
        load_config(p)
    msg = str(err.value)
    assert f"'{field}'" in msg
    assert "\n" not in msg


def test_bad_yaml_and_missing_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train: [\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="section.key=value"):
        load_config(None, ["train.max_steps"])
