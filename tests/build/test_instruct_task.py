"""Instruction data: formats, rendering with and without a chat template, errors, split."""

import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from repotune.build import run_build
from repotune.build.instruct import instruct_examples, read_records, render, to_messages
from repotune.config import BuildConfig, InstructTaskConfig
from repotune.errors import UserError

ALPACA = [
    {"instruction": "Name the build tool.", "input": "", "output": "make"},
    {"instruction": "Sum these.", "input": "1 2", "output": "3"},
]
CHAT = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Lint?"},
        {"role": "assistant", "content": "ruff"},
    ]
}
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _build(tmp_path, **instruct):
    cfg = BuildConfig(instruct=InstructTaskConfig(**instruct))
    dropped = Counter()
    return instruct_examples(cfg, None, dropped), dropped


def test_alpaca_json_and_chat_jsonl_rendered_as_plain_text(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(ALPACA, indent=2))
    (tmp_path / "c.jsonl").write_text(json.dumps(CHAT) + "\n")
    rows, _ = _build(tmp_path, sources=[str(tmp_path / "a.json"), str(tmp_path / "c.jsonl")])
    assert [r["prompt"] for r in rows[:2]] == [
        "### Instruction:\nName the build tool.\n\n### Response:\n",
        "### Instruction:\nSum these.\n\n1 2\n\n### Response:\n",
    ]
    assert [r["completion"] for r in rows] == ["make", "3", "ruff"]
    assert rows[2]["prompt"] == (
        "Be brief.\n\n### User:\nHi\n\n### Assistant:\nHello\n\n### User:\nLint?\n\n"
        "### Assistant:\n"
    )
    assert rows[1]["meta"]["where"].endswith("a.json:7")  # the line its record starts on
    assert rows[2]["meta"]["format"] == "chat" and rows[0]["task"] == "instruct"


def test_chat_template_and_system_prompt(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = TEMPLATE
    _, messages = to_messages("x", ALPACA[1])
    cfg = InstructTaskConfig(system="You are our build engineer.")
    prompt, completion = render(messages, tok, cfg)
    # BOS is left to the tokenizer (it adds one when encoding): no double <bos>
    assert prompt == (
        "<|system|>You are our build engineer.<|end|><|user|>Sum these.\n\n1 2<|end|><|assistant|>"
    )
    assert completion == "3<|end|>"
    plain, _ = render(messages, tok, InstructTaskConfig(chat_template=False))
    assert plain.startswith("### Instruction:")


def test_sharegpt_parquet_and_datasets_folder(tmp_path):
    from datasets import Dataset, DatasetDict

    sharegpt = {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}
    pq.write_table(pa.Table.from_pylist([sharegpt]), tmp_path / "s.parquet")
    DatasetDict({"train": Dataset.from_list(ALPACA)}).save_to_disk(str(tmp_path / "ds"))
    rows, _ = _build(tmp_path, sources=[str(tmp_path / "s.parquet"), str(tmp_path / "ds")])
    assert [r["completion"] for r in rows] == ["A", "make", "3"]
    assert rows[1]["meta"]["where"].endswith("ds[train]: row 1")


BROKEN = [
    (
        "bad.jsonl",
        '{"instruction": "a", "output": "b"}\n{"instruction": "a",\n',
        r"bad.jsonl:2: invalid JSON",
    ),
    (
        "bad.json",
        '[\n  {"instruction": "a", "output": "b"},\n  {"question": "q"}\n]',
        r"bad.json:3: expected 'instruction'/'output'",
    ),
    ("bad2.json", '[\n  {"instruction": "a" "output": "b"}\n]', r"bad2.json:2: invalid JSON"),
    (
        "chat.jsonl",
        json.dumps({"messages": [{"role": "user", "content": "q"}]}),
        r"chat.jsonl:1: the last message must be the assistant's",
    ),
    (
        "roles.jsonl",
        json.dumps({"messages": [{"role": "bot", "content": "q"}]}),
        r"roles.jsonl:1: message 1 needs a role",
    ),
    ("data.csv", "a,b\n", r"data.csv: unsupported file type"),
]


@pytest.mark.parametrize(("name", "text", "message"), BROKEN)
def test_broken_input_gives_one_line_naming_file_and_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=message) as err:
        _build(tmp_path, sources=[str(tmp_path / name)])
    assert "\n" not in str(err.value)


def test_no_sources_is_an_error(tmp_path):
    with pytest.raises(UserError, match="build.instruct.sources is empty"):
        _build(tmp_path)
    with pytest.raises(UserError, match="not found"):
        list(read_records(str(tmp_path / "missing.jsonl")))


def test_seeded_80_10_10_split_through_run_build(tmp_path):
    data = [{"instruction": f"Task {i}", "output": f"Answer {i}"} for i in range(50)]
    data.append(dict(data[0]))  # a duplicate: dropped from val/test if it lands there
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(d) for d in data))
    cfg = BuildConfig(
        tasks=["instruct"],
        instruct=InstructTaskConfig(sources=[str(tmp_path / "d.jsonl")], chat_template=False),
    )
    stats = run_build(tmp_path / "run", cfg)
    ex = stats["instruct"]["examples"]
    assert (
        ex["train"] == 41
        and ex["val"] + ex["test"] + sum(stats["instruct"]["dropped_as_leaks"].values()) == 10
    )
    first = (tmp_path / "run" / "datasets" / "instruct" / "test.jsonl").read_text()
    run_build(tmp_path / "run", cfg)
    assert (tmp_path / "run" / "datasets" / "instruct" / "test.jsonl").read_text() == first
