"""Help pages laid out exactly as click lays them out, without importing click.

`runner --help` is printed by the click group and, faster, by `runner.launch` without click: both call
`runner.command_index.help_page`, which writes through this formatter. The layout (wrapping, the
definition lists' columns, the width from the terminal) follows click 8.5's `click.formatting`
(Copyright 2014 Pallets, BSD-3-Clause), reduced to what a help page of plain text (no ANSI styles) uses;
`tests/cli/test_fast_path.py` compares its pages with click's own at several widths.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterable

DEFAULT_MAX_WIDTH = 80  # click's HelpFormatter: the terminal's width, at most this, less 2, at least 50


def terminal_width(max_width: int | None = None) -> int:
    """The width click's HelpFormatter uses: the terminal's (COLUMNS first), clamped as click clamps it."""
    # shutil.get_terminal_size's rule (COLUMNS, else the terminal of stdout, else 80), without importing shutil.
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            columns = 80
    return max(min(columns, max_width or DEFAULT_MAX_WIDTH) - 2, 50)


class _Wrapper(textwrap.TextWrapper):
    """click's TextWrapper for text without ANSI styles: a long word is cut at the width, never at a
    hyphen (the standard library's prefers a hyphen)."""

    def _handle_long_word(self, reversed_chunks, cur_line, cur_len, width):
        space_left = max(width - cur_len, 1)
        if self.break_long_words:
            last = reversed_chunks[-1]
            cur_line.append(last[:space_left])
            reversed_chunks[-1] = last[space_left:]
        elif not cur_line:
            cur_line.append(reversed_chunks.pop())

    def indent_only(self, text: str) -> str:
        return "\n".join(
            f"{self.initial_indent if i == 0 else self.subsequent_indent}{line}"
            for i, line in enumerate(text.splitlines())
        )


def wrap_text(
    text: str,
    width: int = 78,
    initial_indent: str = "",
    subsequent_indent: str = "",
    preserve_paragraphs: bool = False,
) -> str:
    """click.formatting.wrap_text: paragraphs rewrapped, a paragraph after a `\\b` line kept as written."""
    text = text.expandtabs()
    wrapper = _Wrapper(
        width, initial_indent=initial_indent, subsequent_indent=subsequent_indent, replace_whitespace=False
    )
    if not preserve_paragraphs:
        return wrapper.fill(text)
    paragraphs: list[tuple[int, bool, str]] = []
    buf: list[str] = []
    indent: int | None = None

    def flush() -> None:
        if not buf:
            return
        if buf[0].strip() == "\b":
            paragraphs.append((indent or 0, True, "\n".join(buf[1:])))
        else:
            paragraphs.append((indent or 0, False, " ".join(buf)))
        del buf[:]

    for line in text.splitlines():
        if not line:
            flush()
            indent = None
        else:
            if indent is None:
                stripped = line.lstrip()
                indent = len(line) - len(stripped)
                line = stripped
            buf.append(line)
    flush()
    out = []
    for extra, raw, paragraph in paragraphs:
        wrapper.initial_indent = initial_indent + " " * extra
        wrapper.subsequent_indent = subsequent_indent + " " * extra
        out.append(wrapper.indent_only(paragraph) if raw else wrapper.fill(paragraph))
    return "\n\n".join(out)


def cleandoc(doc: str) -> str:
    """inspect.cleandoc (Python 3.11's), which click and ast.get_docstring use, without importing inspect
    (it imports ast, dis and tokenize): the first line stripped, the common indentation of the others
    removed, blank lines at either end dropped."""
    lines = doc.expandtabs().split("\n")
    margin = min((len(line) - len(line.lstrip()) for line in lines[1:] if line.lstrip()), default=None)
    lines[0] = lines[0].lstrip()
    if margin is not None:
        lines[1:] = [line[margin:] for line in lines[1:]]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def short_help(help_text: str, max_length: int = 45) -> str:
    """click's one-line summary of a command's help: its first sentence, shortened to `max_length`."""
    words = help_text.partition("\n\n")[0].split()
    if words and words[0] == "\b":
        words = words[1:]
    if not words:
        return ""
    last = len(words) - 1
    for i, word in enumerate(words):
        if word.endswith(".") and (i == last or not words[i + 1][0].islower()):
            words = words[: i + 1]
            break
    text = " ".join(words)
    if len(text) <= max_length:
        return text
    if max_length < len("..."):
        return "..."
    return textwrap.shorten(text, max_length, placeholder="...", break_on_hyphens=False)


class HelpFormatter:
    """click.HelpFormatter's layout: a usage line, indented text, sections of definition lists."""

    def __init__(self, width: int, indent_increment: int = 2) -> None:
        self.width = width
        self.indent_increment = indent_increment
        self.current_indent = 0
        self.buffer: list[str] = []

    def write(self, string: str) -> None:
        self.buffer.append(string)

    def write_usage(self, prog: str, args: str, prefix: str = "Usage: ") -> None:
        usage_prefix = f"{prefix:>{self.current_indent}}{prog} "
        text_width = self.width - self.current_indent
        if not args:
            self.write(usage_prefix.rstrip(" ") + "\n")
            return
        if text_width >= len(usage_prefix) + 20:
            indent = " " * len(usage_prefix)
            self.write(wrap_text(args, text_width, initial_indent=usage_prefix, subsequent_indent=indent))
        else:
            self.write(usage_prefix + "\n")
            indent = " " * (max(self.current_indent, len(prefix)) + 4)
            self.write(wrap_text(args, text_width, initial_indent=indent, subsequent_indent=indent))
        self.write("\n")

    def write_paragraph(self) -> None:
        if self.buffer:
            self.write("\n")

    def write_text(self, text: str) -> None:
        """Indented text, its paragraphs rewrapped (click's `write_text`, under one indentation)."""
        self.current_indent += self.indent_increment
        indent = " " * self.current_indent
        self.write(
            wrap_text(
                text, self.width, initial_indent=indent, subsequent_indent=indent, preserve_paragraphs=True
            )
        )
        self.write("\n")
        self.current_indent -= self.indent_increment

    def write_section(self, heading: str, rows: Iterable[tuple[str, str]]) -> None:
        """A heading and its definition list (click's `section` around `write_dl`)."""
        self.write_paragraph()
        self.write(f"{'':>{self.current_indent}}{heading}:\n")
        self.current_indent += self.indent_increment
        self.write_dl(list(rows))
        self.current_indent -= self.indent_increment

    def write_dl(self, rows: list[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        first_col = min(max(len(first) for first, _ in rows), col_max) + col_spacing
        for first, second in rows:
            self.write(f"{'':>{self.current_indent}}{first}")
            if not second:
                self.write("\n")
                continue
            if len(first) <= first_col - col_spacing:
                self.write(" " * (first_col - len(first)))
            else:
                self.write("\n" + " " * (first_col + self.current_indent))
            lines = wrap_text(
                second, max(self.width - first_col - 2, 10), preserve_paragraphs=True
            ).splitlines()
            if lines:
                self.write(f"{lines[0]}\n")
                for line in lines[1:]:
                    self.write(f"{'':>{first_col + self.current_indent}}{line}\n")
            else:
                self.write("\n")

    def getvalue(self) -> str:
        return "".join(self.buffer)
