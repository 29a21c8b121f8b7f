"""The `instruct` task: a team's own instruction data, trained alongside the code tasks.

Records are Alpaca (`instruction`, `input`, `output`), chat (`messages` of role/content, or
ShareGPT `conversations` of from/value), or ready `prompt`/`completion` pairs, read from JSON,
JSONL, Parquet or a local `datasets` folder. Chat and Alpaca records are rendered with the
tokenizer's chat template when it has one (the format the model is prompted with later),
else as `### Instruction:` / `### Response:` text; loss is on the last assistant turn. A
broken record stops the build with one line naming the file and the line (or row).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from repotune.config import BuildConfig, InstructTaskConfig
from repotune.errors import UserError

_ROLES = {"system", "user", "assistant"}
_SHAREGPT = {"system": "system", "human": "user", "user": "user", "gpt": "assistant"}
_FILE_SUFFIXES = (".json", ".jsonl", ".parquet")

Record = tuple[str, dict[str, Any]]  # (where: "file:line" or "file: row n", record)


def read_records(source: str) -> Iterator[Record]:
    """Records of one source: a file by suffix, a saved `datasets` folder, or a folder of
    JSON/JSONL/Parquet files."""
    path = Path(source).expanduser()
    if path.is_dir():
        if any((path / n).is_file() for n in ("dataset_info.json", "dataset_dict.json")):
            yield from _dataset_records(path)
            return
        files = sorted(p for p in path.rglob("*") if p.suffix in _FILE_SUFFIXES)
        if not files:
            raise UserError(f"{path}: no saved `datasets` folder and no JSON/JSONL/Parquet files")
        for f in files:
            yield from read_records(str(f))
        return
    if not path.is_file():
        raise UserError(f"instruct source not found: {path}")
    if path.suffix == ".jsonl":
        yield from _jsonl_records(path)
    elif path.suffix == ".json":
        yield from _json_records(path)
    elif path.suffix == ".parquet":
        yield from _parquet_records(path)
    else:
        raise UserError(f"{path}: unsupported file type (expected .json, .jsonl or .parquet)")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None


def _jsonl_records(path: Path) -> Iterator[Record]:
    for n, line in enumerate(_read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{n}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{n}: invalid JSON ({exc.msg})") from None


def _json_records(path: Path) -> Iterator[Record]:
    """A JSON array of records (or {"data": [...]}), each reported at its own line."""
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        for i, rec in enumerate(next(iter(data.values()))):
            yield f"{path}: record {i + 1}", rec
        return
    if not isinstance(data, list):
        raise UserError(f"{path}:1: expected a JSON array of records")
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    for _ in data:
        while text[pos] in " \t\r\n,":
            pos += 1
        rec, end = decoder.raw_decode(text, pos)
        yield f"{path}:{text.count(chr(10), 0, pos) + 1}", rec
        pos = end


def _parquet_records(path: Path) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
    for i, row in enumerate(rows):
        yield f"{path}: row {i + 1}", row


def _dataset_records(path: Path) -> Iterator[Record]:
    from datasets import Dataset, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"{path}: not a readable `datasets` folder ({exc})") from None
    parts = {"": loaded} if isinstance(loaded, Dataset) else dict(sorted(loaded.items()))
    for name, ds in parts.items():
        label = f"{path}[{name}]" if name else str(path)
        for i, row in enumerate(ds):
            yield f"{label}: row {i + 1}", row


def to_messages(where: str, rec: Any) -> tuple[str, list[dict[str, str]]]:
    """(format, messages) of a record; prompt/completion pairs come back as two messages
    under format 'prompt'. Raises a UserError naming `where` for anything else."""
    if not isinstance(rec, dict):
        raise UserError(f"{where}: expected an object, got {type(rec).__name__}")
    if "messages" in rec or "conversations" in rec:
        return "chat", _chat(where, rec)
    if "instruction" in rec and "output" in rec:
        parts = [rec["instruction"], rec.get("input") or ""]
        if not all(isinstance(p, str) for p in [*parts, rec["output"]]) or not parts[0].strip():
            raise UserError(f"{where}: 'instruction', 'input' and 'output' must be text")
        user = parts[0] + (f"\n\n{parts[1]}" if parts[1].strip() else "")
        return "alpaca", [
            {"role": "user", "content": user},
            {"role": "assistant", "content": rec["output"]},
        ]
    if isinstance(rec.get("prompt"), str) and isinstance(rec.get("completion"), str):
        return "prompt", [
            {"role": "user", "content": rec["prompt"]},
            {"role": "assistant", "content": rec["completion"]},
        ]
    keys = ", ".join(sorted(map(str, rec))) or "none"
    raise UserError(
        f"{where}: expected 'instruction'/'output' (Alpaca), 'messages' (chat) or "
        f"'prompt'/'completion' (keys found: {keys})"
    )


def _chat(where: str, rec: dict) -> list[dict[str, str]]:
    turns = rec.get("messages", rec.get("conversations"))
    if not isinstance(turns, list) or not turns:
        raise UserError(f"{where}: 'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(turns, 1):
        if not isinstance(m, dict):
            raise UserError(f"{where}: message {i} is not an object")
        role = m.get("role", _SHAREGPT.get(str(m.get("from")), m.get("from")))
        content = m.get("content", m.get("value"))
        if role not in _ROLES or not isinstance(content, str):
            raise UserError(f"{where}: message {i} needs a role (system/user/assistant) and text")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "assistant":
        raise UserError(f"{where}: the last message must be the assistant's")
    if not any(m["role"] == "user" for m in out):
        raise UserError(f"{where}: no user message")
    return out


def render(
    messages: list[dict[str, str]], tokenizer: Any | None, cfg: InstructTaskConfig
) -> tuple[str, str]:
    """(prompt, completion) for a conversation; the completion is its last assistant turn."""
    if cfg.system is not None:
        messages = [{"role": "system", "content": cfg.system}] + [
            m for m in messages if m["role"] != "system"
        ]
    if cfg.chat_template and tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return _templated(messages, tokenizer)
    return _plain(messages)


def _templated(messages: list[dict[str, str]], tokenizer: Any) -> tuple[str, str]:
    try:
        prompt, full = _apply(tokenizer, messages)
    except Exception:  # noqa: BLE001 - jinja raises plain exceptions for "no system role"
        prompt, full = _apply(tokenizer, _system_into_user(messages))
    last = messages[-1]["content"]
    completion = full[len(prompt) :] if full.startswith(prompt) else last
    bos = getattr(tokenizer, "bos_token", None)
    if bos and prompt.startswith(bos):  # the tokenizer adds BOS itself when encoding
        prompt = prompt[len(bos) :]
    return prompt, completion


def _apply(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, str]:
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    return prompt, tokenizer.apply_chat_template(messages, tokenize=False)


def _system_into_user(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """For templates without a system role: the system text opens the first user turn."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    first_user = next(m for m in rest if m["role"] == "user")
    first_user["content"] = f"{system}\n\n{first_user['content']}"
    return rest


def _plain(messages: list[dict[str, str]]) -> tuple[str, str]:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    head = f"{system}\n\n" if system else ""
    if len(turns) == 2:
        return f"{head}### Instruction:\n{turns[0]['content']}\n\n### Response:\n", turns[1][
            "content"
        ]
    body = "".join(
        f"### {'User' if m['role'] == 'user' else 'Assistant'}:\n{m['content']}\n\n"
        for m in turns[:-1]
    )
    return f"{head}{body}### Assistant:\n", turns[-1]["content"]


def instruct_examples(cfg: BuildConfig, tokenizer: Any | None, dropped: Counter[str]) -> list[dict]:
    """Rows for every record of every source (ids name the source and the record's place)."""
    ic = cfg.instruct
    if not ic.sources:
        raise UserError(
            "instruct: build.instruct.sources is empty: name JSON, JSONL or Parquet files or "
            "`datasets` folders"
        )
    rows = []
    for k, source in enumerate(ic.sources):
        for n, (where, rec) in enumerate(read_records(source)):
            fmt, messages = to_messages(where, rec)
            if fmt == "prompt":
                prompt, completion = messages[0]["content"], messages[1]["content"]
            else:
                prompt, completion = render(messages, tokenizer, ic)
            if not completion.strip():
                dropped["empty_output"] += 1
                continue
            rows.append(
                {
                    "id": f"instruct:{k}:{Path(source).name}:{n}",
                    "task": "instruct",
                    "prompt": prompt,
                    "completion": completion,
                    "meta": {
                        "path": source,
                        "where": where,
                        "time": None,
                        "language": None,
                        "format": fmt,
                    },
                }
            )
    if ic.max_examples is not None and len(rows) > ic.max_examples:
        dropped["over_max_examples"] += len(rows) - ic.max_examples
        keep = sorted(random.Random(cfg.seed).sample(range(len(rows)), ic.max_examples))
        rows = [rows[i] for i in keep]
    return rows
