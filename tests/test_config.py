import pytest
import yaml

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


OLD_NAMES = (
    "train:\n  batch_size: 8\n  grad_accum: 2\n  lr_scheduler: linear\n"
    "  gradient_checkpointing: true\nrefresh:\n  lr_scheduler: cosine\n"
)
NEW_NAMES = (
    "train:\n  per_device_train_batch_size: 8\n  gradient_accumulation_steps: 2\n"
    "  lr_scheduler_type: linear\n  activation_checkpointing: true\n"
    "refresh:\n  lr_scheduler_type: cosine\n"
)


def test_renamed_settings_keep_their_old_names(tmp_path):
    """train's settings took TRL's names (issue 17); a config with the old ones loads to the
    same values, and config.yaml is written with the new ones."""
    from repotune.config import TrainConfig, dump_config

    (tmp_path / "old.yaml").write_text(OLD_NAMES)
    (tmp_path / "new.yaml").write_text(NEW_NAMES)
    old, new = load_config(tmp_path / "old.yaml"), load_config(tmp_path / "new.yaml")
    assert old == new != load_config()
    assert (old.train.per_device_train_batch_size, old.train.gradient_accumulation_steps) == (8, 2)
    assert old.train.lr_scheduler_type == "linear" and old.train.activation_checkpointing
    assert old.refresh.lr_scheduler_type == "cosine"
    assert TrainConfig(batch_size=3).per_device_train_batch_size == 3  # keyword arguments too
    dump_config(old, tmp_path / "config.yaml")
    dumped = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert dumped["train"]["per_device_train_batch_size"] == 8
    assert not set(TrainConfig.renamed) & set(dumped["train"])
    assert set(dumped["refresh"]) == {"replay", "epochs", "steps", "lr_scheduler_type"}
    assert load_config(tmp_path / "config.yaml") == old


def test_set_with_an_old_name_overrides_either_name(tmp_path):
    """`--set train.batch_size=4` over a file that says per_device_train_batch_size (as every
    config.yaml written now does), and the other way round: the --set value wins."""
    (tmp_path / "old.yaml").write_text(OLD_NAMES)
    (tmp_path / "new.yaml").write_text(NEW_NAMES)
    for path in (None, tmp_path / "old.yaml", tmp_path / "new.yaml"):
        cfg = load_config(
            path,
            [
                "train.batch_size=4",
                "train.gradient_accumulation_steps=3",
                "refresh.lr_scheduler=linear",
            ],
        )
        assert cfg.train.per_device_train_batch_size == 4
        assert cfg.train.gradient_accumulation_steps == 3
        assert cfg.refresh.lr_scheduler_type == "linear"
    with pytest.raises(UserError, match="'train.lr_scheduler_type'"):
        load_config(overrides=["train.lr_scheduler=bogus"])


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
