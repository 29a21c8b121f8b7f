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


def test_words_yaml_1_1_reads_as_booleans_keep_their_meaning(tmp_path):
    """`dedup: off` (docs/mine.md) was read as false by YAML and rejected, in a file and in
    `--set` alike; bool fields still take on/off/yes/no, and a string stays a string."""
    p = tmp_path / "c.yaml"
    p.write_text(
        "mine:\n  dedup: off\n  include_merges: yes\n  scrub_secrets: off\n"
        "  author_salt: no\n  ref: on\n"
    )
    cfg = load_config(p)
    assert cfg.mine.dedup == "off"
    assert cfg.mine.include_merges is True and cfg.mine.scrub_secrets is False
    assert (cfg.mine.author_salt, cfg.mine.ref) == ("no", "on")
    cfg = load_config(overrides=["mine.dedup=off", "mine.hash_authors=on", "mine.ref=no"])
    assert (cfg.mine.dedup, cfg.mine.hash_authors, cfg.mine.ref) == ("off", True, "no")
    cfg = load_config(overrides=["mine.hash_authors=true", "mine.include_merges=False"])
    assert cfg.mine.hash_authors is True and cfg.mine.include_merges is False
    with pytest.raises(UserError, match=r"'mine.dedup'"):
        load_config(overrides=["mine.dedup=false"])  # a boolean is still not a dedup mode


def test_a_dumped_config_reads_back_the_same(tmp_path):
    from repotune.config import dump_config

    cfg = load_config(overrides=["mine.dedup=off", "mine.author_salt=yes"])
    dump_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


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
