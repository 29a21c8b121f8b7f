"""Secrets in code and commit messages -> a placeholder, before anything reaches the disk.

What counts as a secret is detect-secrets' judgement: its regex plugins (cloud keys, tokens,
private keys, credentials in URLs), its keyword detector (`password = "..."`, per file type) and
its false-positive filters, applied one line at a time as detect-secrets itself does. Running its
~40 Python regexes over every byte of a large history would cost more than mining it, so a
case-insensitive RE2 automaton over the whole text first picks the few lines that contain a
plugin's literal anchor (`akia`, `ghp_`, `password`, ...); only those lines are checked.

Because the decision is per line (content and file type), the same line is scrubbed the same way
in `before`, `after` and the hunks, so a scrubbed record still diffs as git says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from re import Pattern

import re2
from detect_secrets.filters import heuristic
from detect_secrets.plugins import (
    aws,
    azure_storage_key,
    basic_auth,
    discord,
    github_token,
    gitlab_token,
    jwt,
    keyword,
    mailchimp,
    npm,
    openai,
    private_key,
    pypi_token,
    sendgrid,
    slack,
    square_oauth,
    stripe,
    telegram_token,
    twilio,
)
from detect_secrets.util.filetype import FileType, determine_file_type

# detect-secrets plugin -> RE2 probe (lower case, matched ignoring case) that every match of the
# plugin's patterns contains on the same line. Probes are kept cheap for RE2's DFA: a counted
# repetition after a common character (`[mno][a-z0-9_-]{23,25}`, ignoring case) multiplies its
# states and slows the scan of every text, so those plugins are probed by a part of their match
# that starts with something rare (`.abcdef.`, 8 digits and a colon, `SK` in capitals). Left
# out on purpose: the entropy plugins and IPPublicDetector (hashes, test vectors and addresses
# are everywhere in code) and the Artifactory/Cloudant/IBM/SoftLayer keyword plugins (rare,
# and they flag identifiers).
_PLUGINS: list[tuple[type, str]] = [
    (aws.AWSKeyDetector, r"akia|asia|abia|acca|a3t|aws"),
    (azure_storage_key.AzureStorageKeyDetector, r"accountkey="),
    (basic_auth.BasicAuthDetector, r"://[^:/?#\[\]@!$&'()*+,;=\s]+:[^:/?#\[\]@!$&'()*+,;=\s]+@"),
    (discord.DiscordBotTokenDetector, r"\.[a-z0-9_-]{6}\.[a-z0-9_-]{27}"),
    (github_token.GitHubTokenDetector, r"gh[pousr]_"),
    (gitlab_token.GitLabTokenDetector, r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-|gr1348941"),
    (jwt.JwtTokenDetector, r"eyj"),
    (mailchimp.MailchimpDetector, r"-us[0-9]"),
    (npm.NpmDetector, r"_authtoken"),
    (openai.OpenAIDetector, r"t3blbkfj"),
    (pypi_token.PypiTokenDetector, r"pypi-ag"),
    (sendgrid.SendGridDetector, r"sg\."),
    (slack.SlackDetector, r"xox|hooks\.slack\.com"),
    (square_oauth.SquareOAuthDetector, r"sq0csp-"),
    (stripe.StripeDetector, r"k_live_"),
    (telegram_token.TelegramBotTokenDetector, r"[0-9]{8}:"),
    (twilio.TwilioKeyDetector, r"(?-i:(?:AC|SK)[a-z0-9]{32})"),  # as twilio's, case and all
]
# The keyword detector's DENYLIST words, and the private-key headers (handled apart: a file
# holding a private key loses its whole text, since the key spans lines).
_KEYWORD_PROBE = (
    r"(?:api|auth|service|account|db|database|priv|private|client)_?key"
    r"|password|passwd|(?:db|database|key)_?pass|pwd|secret|contrase"
)
_PRIVATE_KEY_PROBE = r"private key|putty-user-key-file"
# Plugins whose first group is a token prefix (`ghp`), not the secret: replace the whole match.
_WHOLE_MATCH = {"GitHubTokenDetector", "GitLabTokenDetector"}
_PRIVATE_KEY = re.compile("|".join(p.pattern for p in private_key.PrivateKeyDetector.denylist))
_PEM_BLOCK = re.compile(
    r"-----BEGIN[^\n]*PRIVATE KEY[^\n]*-----.*?(?:-----END[^\n]*-----|\Z)", re.DOTALL
)


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: Pattern[str]
    group: int


def _plugin_rules(plugin: type) -> tuple[_Rule, ...]:
    whole = plugin.__name__ in _WHOLE_MATCH
    return tuple(
        _Rule(plugin.secret_type, p, 0 if whole else min(p.groups, 1)) for p in plugin.denylist
    )


# One probe per plugin, then the keyword probe, then the private-key probe (whole-file check).
_PROBES = [probe for _, probe in _PLUGINS] + [_KEYWORD_PROBE, _PRIVATE_KEY_PROBE]
_RULES = [_plugin_rules(plugin) for plugin, _ in _PLUGINS]
_KEYWORD_INDEX = len(_PLUGINS)
# A line of a text (UTF-8) -> (the line scrubbed, the kinds replaced in it).
LineEdits = dict[bytes, tuple[bytes, list[str]]]
_JWT = jwt.JwtTokenDetector.secret_type
_KEYWORD = keyword.KeywordDetector.secret_type
PRIVATE_KEY = private_key.PrivateKeyDetector.secret_type


def _options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = 64 << 20
    return options


def _probe_set() -> re2.Set:
    probes = re2.Set.SearchSet(_options())
    for probe in _PROBES:
        probes.Add(probe.encode())
    probes.Compile()
    return probes


_PROBE = re2.compile("|".join(f"(?:{p})" for p in _PROBES).encode(), _options())
_PROBE_SET = _probe_set()  # which probes a candidate line matches, in one pass
_KEY_PROBE = re2.compile(_PRIVATE_KEY_PROBE.encode(), _options())


# dotenv files (`.env`, `.env.local`, `prod.env`): KEY=value lines, unquoted, as in INI files.
# detect-secrets files them under OTHER, where the keyword rules need quotes, and so misses the
# most common home of an API key.
_DOTENV = re.compile(r"(?:^|/)(?:\.env(?:\.[^/]*)?|[^/]+\.env)$")


@lru_cache(maxsize=1 << 12)
def file_type(path: str) -> FileType | None:
    """What the scrubbing of a line depends on besides its content (None: a commit message)."""
    if not path:
        return None
    return FileType.INI if _DOTENV.search(path) else determine_file_type(path)


@lru_cache(maxsize=64)
def _keyword_rules(filetype: FileType | None) -> tuple[tuple[Pattern[str], int], ...]:
    """detect-secrets' keyword regexes for a file type (quotes required unless config-like)."""
    if filetype is None:  # commit messages: quoted values, or `password=hunter2` (not `key: x`)
        rules = keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP
        return (*rules.items(), (keyword.FOLLOWED_BY_EQUAL_SIGNS_REGEX, 5))
    table = keyword.REGEX_BY_FILETYPE.get(filetype, keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
    return tuple(table.items())


def _is_false_positive(secret: str) -> bool:
    return heuristic.is_sequential_string(secret) or heuristic.is_potential_uuid(secret)


def find_secrets(line: str, path: str = "") -> list[tuple[int, int, str]]:
    """(start, end, kind) of every secret on one line; `path` picks the keyword rules
    (detect-secrets' file type); "" means a commit message."""
    return list(_line_secrets(line, file_type(path)))


def _line_secrets(line: str, filetype: FileType | None) -> tuple[tuple[int, int, str], ...]:
    """Only the plugins whose probe matches the line are run. Lines repeat across versions of
    a file, so short ones are remembered."""
    if len(line) <= 1000:
        return _cached_line_secrets(line, filetype)
    return _scan_line(line, filetype)


def _scan_line(line: str, filetype: FileType | None) -> tuple[tuple[int, int, str], ...]:
    found: list[tuple[int, int, str]] = []
    for index in _PROBE_SET.Match(line.encode("utf-8", "surrogatepass")) or ():
        if index < _KEYWORD_INDEX:
            found += _regex_secrets(line, _RULES[index])
        elif index == _KEYWORD_INDEX:
            found += _keyword_secrets(line, filetype)
    return tuple(_merge(found))


_cached_line_secrets = lru_cache(maxsize=1 << 16)(_scan_line)


def _regex_secrets(line: str, rules: tuple[_Rule, ...]) -> list[tuple[int, int, str]]:
    found = []
    for rule in rules:
        for m in rule.pattern.finditer(line):
            group = rule.group if rule.group and m.group(rule.group) else 0
            secret = m.group(group)
            if _is_false_positive(secret):
                continue
            if rule.kind == _JWT and not jwt.JwtTokenDetector.is_formally_valid(secret):
                continue
            found.append((*m.span(group), rule.kind))
    return found


def _keyword_secrets(line: str, filetype: FileType | None) -> list[tuple[int, int, str]]:
    if heuristic.is_indirect_reference(line):  # `password = get_password()`
        return []
    found = []
    for pattern, group in _keyword_rules(filetype):
        for m in pattern.finditer(line):
            secret = m.group(group)
            if (
                _is_false_positive(secret)
                or heuristic.is_templated_secret(secret)
                or heuristic.is_prefixed_with_dollar_sign(secret)
                or heuristic.is_not_alphanumeric_string(secret)
                or heuristic.is_likely_id_string(secret, line)
            ):
                continue
            found.append((*m.span(group), _KEYWORD))
    return found


class Scrubber:
    """Replaces secrets with `placeholder`; each call returns the kinds it replaced."""

    def __init__(self, placeholder: str = "<SECRET>") -> None:
        self.placeholder = placeholder

    def line(self, line: str, path: str = "") -> tuple[str, list[str]]:
        return self._line(line, file_type(path))

    def _line(self, line: str, filetype: FileType | None) -> tuple[str, list[str]]:
        spans = _line_secrets(line, filetype)
        if not spans:
            return line, []
        out, end = [], 0
        for start, stop, _ in spans:
            out += [line[end:start], self.placeholder]
            end = stop
        out.append(line[end:])
        return "".join(out), [kind for _, _, kind in spans]

    def text(self, text: str, path: str) -> tuple[str, list[str]]:
        """A file's text, line by line; only lines with a probe hit are checked."""
        scrubbed, kinds, _ = self.scan(text.encode("utf-8", "surrogatepass"), path)
        return (scrubbed.decode("utf-8", "surrogatepass") if kinds else text), kinds

    def scan(self, data: bytes, path: str) -> tuple[bytes, list[str], LineEdits]:
        """A text as UTF-8 bytes (a blob as it is: no line is split out or decoded unless it
        has a hit). Returns `data` scrubbed, the kinds replaced (in line order), and each line
        that changed -> (the line scrubbed, its kinds): what another version of the text, which
        shares most of its lines, needs to be scrubbed without a scan (see `replace_lines`)."""
        filetype = file_type(path)
        pieces: list[bytes] = []
        kinds: list[str] = []
        edits: LineEdits = {}
        done = 0
        for start, end in _candidate_lines(data):
            line = data[start:end]
            edit = edits.get(line)
            if edit is None:
                scrubbed, found = self._line(line.decode("utf-8", "surrogatepass"), filetype)
                if not found:
                    continue
                edit = edits[line] = (scrubbed.encode("utf-8", "surrogatepass"), found)
            pieces += [data[done:start], edit[0]]
            done = end
            kinds += edit[1]
        if not kinds:
            return data, [], {}
        pieces.append(data[done:])
        return b"".join(pieces), kinds, edits

    def diff_lines(self, lines: Sequence[str], path: str) -> tuple[list[str], list[str]]:
        """Hunk lines (' ', '-', '+' then the content): the content is scrubbed as in `text`."""
        data = "\n".join(lines).encode("utf-8", "surrogatepass")
        out, kinds = list(lines), []
        filetype = file_type(path)
        for start, _ in _candidate_lines(data):
            i = data.count(b"\n", 0, start)
            content, found = self._line(out[i][1:], filetype)
            if found:
                out[i] = out[i][0] + content
                kinds += found
        return out, kinds

    def header(self, header: str, path: str) -> tuple[str, list[str]]:
        """A hunk header: the function context after the second `@@` is a line of code."""
        head, sep, context = header.partition(" @@")
        if not sep or not context:
            return header, []
        context, kinds = self.line(context, path)
        return head + sep + context, kinds

    def message(self, message: str) -> tuple[str, list[str]]:
        """A commit message: a pasted key block goes whole, other secrets as in config files."""
        kinds: list[str] = []
        if _KEY_PROBE.search(message.encode("utf-8", "surrogatepass")):
            message, n = _PEM_BLOCK.subn(self.placeholder, message)
            kinds += [PRIVATE_KEY] * n
        message, found = self.text(message, "")
        return message, kinds + found


def has_private_key(text: str | bytes) -> bool:
    """True if the text (or its UTF-8 bytes) holds a private key: its whole body is secret,
    not one line of it."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if not _KEY_PROBE.search(data):
        return False
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogatepass")
    return _PRIVATE_KEY.search(text) is not None


def replace_lines(data: bytes, edits: LineEdits) -> tuple[bytes, list[str], LineEdits]:
    """`data` with each whole line that `edits` names replaced, the kinds replaced (in line
    order), and the edits that occurred. Scrubbing decides line by line, on the line alone
    (and the file type), so this is `Scrubber.scan` for a text whose lines with a secret all
    appear in `edits`."""
    spans = []
    found: LineEdits = {}
    for line, edit in edits.items():
        pos = 0
        while (start := data.find(line, pos)) >= 0:
            end = start + len(line)
            if data[start - 1 : start] in (b"", b"\n") and data[end : end + 1] in (b"", b"\n"):
                spans.append((start, end, edit))
                found[line] = edit
            pos = start + 1
    if not spans:
        return data, [], {}
    pieces: list[bytes] = []
    kinds: list[str] = []
    done = 0
    for start, end, (scrubbed, what) in sorted(spans, key=lambda s: s[0]):
        pieces += [data[done:start], scrubbed]
        kinds += what
        done = end
    pieces.append(data[done:])
    return b"".join(pieces), kinds, found


def _candidate_lines(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) byte offsets of the lines (without b'\\n') where a probe matches."""
    pos = 0
    while (m := _PROBE.search(data, pos)) is not None:
        start = data.rfind(b"\n", 0, m.start()) + 1
        end = data.find(b"\n", m.start())
        if end < 0:
            yield start, len(data)
            return
        yield start, end
        pos = end + 1


def _merge(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Sorted, non-overlapping spans (overlaps joined; the first kind names the union)."""
    merged: list[tuple[int, int, str]] = []
    for start, stop, kind in sorted(spans):
        if merged and start < merged[-1][1]:
            prev = merged[-1]
            merged[-1] = (prev[0], max(prev[1], stop), prev[2])
        else:
            merged.append((start, stop, kind))
    return merged
