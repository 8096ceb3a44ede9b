"""Line numbers for errors. `tomllib` gives no positions, so a small scan of the text finds
where each key is written, only when there is an error to report."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from typing import NoReturn

from descent.engine.errors import SpecError

from .overrides import related

# arrays and inline tables inside each other; tomllib recurses per level, so a few hundred give a
# RecursionError. 100 leaves room for the 32 nested residual blocks `checks.check_nesting` allows.
MAX_TOML_DEPTH = 100


def parse_toml(text: str, file: str) -> dict:
    deep = _too_deep(text, MAX_TOML_DEPTH)
    if deep is None:
        try:
            return tomllib.loads(text)
        except RecursionError:      # the scan below is approximate; this is the backstop
            deep = _too_deep(text, 0) or 1
        except tomllib.TOMLDecodeError as e:
            _raise_decode_error(e, text, file)
    raise SpecError(_guess_key(text, deep), f"arrays and tables nest more than {MAX_TOML_DEPTH} levels deep "
                                            f"here; that many is never needed", file, deep)


def _too_deep(text: str, limit: int) -> int | None:
    """The line where `[` and `{` outside strings and comments first nest deeper than `limit`
    (with limit 0: the line of the deepest point); None if they never do."""
    depth, deepest, line, at, i, n = 0, 0, 1, None, 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c in "\"'":
            quote = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else c
            j, i = i + len(quote), i + len(quote)
            while j < n and text[j:j + len(quote)] != quote:
                if c == '"' and text[j] == "\\":
                    j += 1
                elif text[j] == "\n" and len(quote) == 1:
                    break       # an unclosed string: let tomllib say so
                j += 1
            line += text.count("\n", i, j)
            i = j + len(quote)
            continue
        elif c in "[{":
            depth += 1
            if depth > deepest:
                deepest, at = depth, line
            if limit and depth > limit:
                return line
        elif c in "]}":
            depth -= 1
        i += 1
    return None if limit else at


def _raise_decode_error(e: tomllib.TOMLDecodeError, text: str, file: str) -> NoReturn:
    msg, line = str(e), None
    m = re.search(r"\s*\(at line (\d+), column \d+\)$", msg)
    if m:
        msg, line = msg[:m.start()], int(m.group(1))
    elif msg.endswith("(at end of document)"):
        msg, line = msg.removesuffix("(at end of document)").rstrip(), text.count("\n") + 1
    raise SpecError(_guess_key(text, line), f"invalid TOML: {msg}", file, line) from None


def _guess_key(text: str, line: int | None) -> str:
    """The section and key on `line` of a file that failed to parse, as well as a regex can tell."""
    if line is None:
        return ""
    lines = text.splitlines()
    section = ""
    for s in lines[:line - 1]:
        m = re.match(r"\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]", s)
        if m:
            section = m.group(1)
    m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*=", lines[line - 1]) if line <= len(lines) else None
    if m:
        return f"{section}.{m.group(1)}" if section else m.group(1)
    return section


def locate(err: SpecError, file: str, text: str | None, set_keys: Sequence[str]) -> SpecError:
    """`err` with the file named and the line of its key, or "(from --set)" if an override set it."""
    if err.key and any(related(err.key, k) for k in set_keys):
        return SpecError(err.key, f"{err.message} (from --set)", file)
    line = err.line
    if line is None and text is not None:
        line = _line_of(err.key, text)
    return SpecError(err.key, err.message, err.file or file, line)


def _line_of(key: str, text: str) -> int | None:
    """The line where `key` (or, failing that, its nearest parent) is written in `text`."""
    if not key:
        return None
    try:
        lines = _key_lines(text)
    except Exception:   # a locating bug must never hide the real error
        return None
    while key:
        if key in lines:
            return lines[key]
        m = _LAST_PART.search(key)
        key = key[:m.start()] if m else ""
    return None


_LAST_PART = re.compile(r"(\.[^.\[]+|\[\d+\])$")
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]}\n#]*")


def _key_lines(text: str) -> dict[str, int]:
    """Map every key path in valid TOML text ("model.layers[1].units", "knobs[0]") to its line."""
    return _Scanner(text).run()


class _Scanner:
    """Just enough of a TOML reader to know where keys are; the text has already parsed."""

    def __init__(self, text: str):
        self.s, self.i, self.line, self.out = text, 0, 1, {}

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def advance(self, n: int = 1) -> None:
        self.line += self.s.count("\n", self.i, self.i + n)
        self.i += n

    def skip(self, newlines: bool = False) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.advance((end if end >= 0 else len(self.s)) - self.i)
            else:
                return

    def record(self, path: str, line: int) -> None:
        self.out.setdefault(path, line)

    def run(self) -> dict[str, int]:
        prefix, counts = "", {}
        while True:
            self.skip(newlines=True)
            if self.i >= len(self.s):
                return self.out
            line, start = self.line, self.i
            if self.s.startswith("[[", self.i):
                self.advance(2)
                name = ".".join(self.key())
                counts[name] = counts.get(name, -1) + 1
                prefix = f"{name}[{counts[name]}]"
                self.record(prefix, line)
                self.to_line_end()
            elif self.peek() == "[":
                self.advance()
                prefix = ".".join(self.key())
                self.record(prefix, line)
                self.to_line_end()
            else:
                parts = self.key()
                path = ".".join([prefix, *parts] if prefix else parts)
                self.record(path, line)
                self.skip()
                if self.peek() == "=":
                    self.advance()
                    self.value(path)
                self.to_line_end()
            if self.i == start:
                self.advance()

    def to_line_end(self) -> None:
        end = self.s.find("\n", self.i)
        self.advance((end if end >= 0 else len(self.s)) - self.i)

    def key(self) -> list[str]:
        parts = []
        while True:
            self.skip()
            if self.peek() in ("'", '"'):
                parts.append(self.string())
            else:
                m = _BARE.match(self.s, self.i)
                if not m:
                    return parts
                parts.append(m.group())
                self.advance(len(m.group()))
            self.skip()
            if self.peek() != ".":
                return parts
            self.advance()

    def string(self) -> str:
        q, start = self.peek(), self.i
        if self.s.startswith(q * 3, self.i):
            j = self.i + 3
            while True:
                j = self.s.find(q * 3, j)
                if j < 0:
                    j = len(self.s)
                    break
                if q == '"' and _escaped(self.s, j):
                    j += 1
                    continue
                break
            while self.s.startswith(q, j + 3):        # up to two quotes may end the content
                j += 1
            self.advance(j + 3 - self.i)
            return self.s[start + 3:j]
        j = self.i + 1
        while j < len(self.s) and self.s[j] not in (q, "\n"):
            j += 2 if q == '"' and self.s[j] == "\\" else 1
        self.advance(j + 1 - self.i)
        return self.s[start + 1:j]

    def value(self, path: str) -> None:
        self.skip()
        c = self.peek()
        if c == "[":
            self.advance()
            n = 0
            while True:
                self.skip(newlines=True)
                if self.peek() in ("]", ""):
                    self.advance()
                    return
                start = self.i
                self.record(f"{path}[{n}]", self.line)
                self.value(f"{path}[{n}]")
                self.skip(newlines=True)
                if self.peek() == ",":
                    self.advance()
                    n += 1
                elif self.i == start:
                    self.advance()
        elif c == "{":
            self.advance()
            while True:
                self.skip(newlines=True)
                if self.peek() in ("}", ""):
                    self.advance()
                    return
                start, line = self.i, self.line
                sub = f"{path}.{'.'.join(self.key())}"
                self.record(sub, line)
                self.skip()
                if self.peek() == "=":
                    self.advance()
                    self.value(sub)
                self.skip(newlines=True)
                if self.peek() == ",":
                    self.advance()
                elif self.i == start:
                    self.advance()
        elif c in ("'", '"'):
            self.string()
        else:
            m = _SCALAR.match(self.s, self.i)
            self.advance(len(m.group()))


def _escaped(s: str, j: int) -> bool:
    """Whether s[j] is preceded by an odd number of backslashes."""
    k = j
    while k > 0 and s[k - 1] == "\\":
        k -= 1
    return (j - k) % 2 == 1
