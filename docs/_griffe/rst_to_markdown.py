"""Griffe extension: render the package's reStructuredText markup as Markdown.

The docstrings are numpy-style and use a few reStructuredText constructs that
Markdown does not know. Before mkdocstrings parses them, this extension turns

- cross-reference roles (``:class:`~.moments.RunningMoments```, ``:meth:`update```,
  ``:mod:`.views```, ...) into links to the API reference (mkdocs-autorefs),
  resolved as Sphinx does: relative to the documented object, then by suffix; a
  target that is not documented (``numpy.ndarray``) stays plain code;
- simple tables (``=====  =====`` borders) into Markdown tables;
- literal blocks (a paragraph ending in ``::``) and ``.. code-block::`` into
  fenced code blocks;
- doctest lines (``>>>``) outside an Examples section into ``pycon`` blocks
  (in Markdown a line starting with ``>`` is a quotation), without the
  ``# doctest: +SKIP`` directives;
- definition lists (a term, its description indented below it) into Markdown
  definition lists;
- prose written after the last item of a Parameters (or Returns, ...) section,
  which numpy style would read as more items, into a Notes section.

The source files are not changed; only what the documentation shows.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator

import griffe

_ROLE = re.compile(r":(?:py:)?(class|func|meth|attr|mod|data|exc|obj|const):`([^`]+)`")
_BORDER = re.compile(r"^( *)=+(?: +=+)+ *$")
_SECTION_UNDERLINE = re.compile(r"^ *-{3,} *$")
_DOCTEST_SKIP = re.compile(r"\s*#\s*doctest:\s*\+\w+(?:\s*,\s*\+\w+)*\s*$")
_LIST_ITEM = re.compile(r"^ *(?:[-*+]|\d+\.) ")


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: object) -> None:
        """Index the package's objects, then convert each docstring."""
        index = _index(pkg)
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj, index)


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


def _index(pkg: griffe.Module) -> dict[str, str]:
    """Every documented path -> the canonical path it renders under."""
    index: dict[str, str] = {}

    def visit(obj: griffe.Object) -> None:
        index[obj.path] = obj.path
        for member in obj.members.values():
            if member.is_alias:
                try:
                    target = member.final_target  # type: ignore[union-attr]
                except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                    continue
                if target.path.startswith(pkg.path + "."):
                    index[member.path] = target.path
            else:
                visit(member)  # type: ignore[arg-type]

    visit(pkg)
    return index


def _resolve(target: str, obj: griffe.Object, index: dict[str, str]) -> str | None:
    """Sphinx's lookup: absolute, then from the object outwards, then by suffix."""
    name = target.lstrip(".")
    if name in index:
        return index[name]
    scope: griffe.Object | None = obj
    while scope is not None:
        candidate = f"{scope.path}.{name}"
        if candidate in index:
            return index[candidate]
        scope = scope.parent
    matches = sorted({path for key, path in index.items() if key.endswith("." + name)})
    return min(matches, key=len) if matches else None


def _roles(text: str, obj: griffe.Object, index: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        role, content = match.groups()
        explicit = re.fullmatch(r"(.+?)\s*<([^<>]+)>", content)
        if explicit:
            title, target = explicit.group(1), explicit.group(2)
        else:
            target = content
            shown = target.lstrip("~").lstrip(".")
            title = shown.rsplit(".", 1)[-1] if target.startswith("~") else shown
            if role in ("func", "meth") and not title.endswith(")"):
                title += "()"
        target = target.lstrip("~")
        path = _resolve(target, obj, index)
        code = f"`{title}`"
        if path is None:
            return code
        return f'<autoref identifier="{path}" optional>{code}</autoref>'

    return _ROLE.sub(replace, text)


def _table(lines: list[str]) -> list[str]:
    """One reStructuredText simple table (its lines, borders included) as Markdown."""
    border = lines[0]
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]
    indent = " " * spans[0][0]

    def cells(line: str) -> list[str]:
        out = []
        for number, (start, _) in enumerate(spans):
            stop = len(line) if number == len(spans) - 1 else spans[number + 1][0]
            out.append(line[start:stop].strip())
        return out

    borders = [number for number, line in enumerate(lines) if _BORDER.match(line)]
    header_end = borders[1] if len(borders) > 2 else 0
    rows: list[list[str]] = []
    header: list[list[str]] = []
    for number, line in enumerate(lines):
        if number in borders or not line.strip():
            continue
        target = header if number < header_end else rows
        row = cells(line)
        if target and not row[0]:
            # a continuation line: its text belongs to the row above
            target[-1] = [f"{a} {b}".strip() for a, b in zip(target[-1], row, strict=True)]
        else:
            target.append(row)
    if not header:
        header, rows = [[""] * len(spans)], rows

    def markdown_row(row: list[str]) -> str:
        # a pipe separates cells, except inside a code span
        escaped = [
            "".join(
                part if part.startswith("`") else part.replace("|", r"\|")
                for part in re.split(r"(`+[^`]*`+)", cell)
            )
            for cell in row
        ]
        return indent + "| " + " | ".join(escaped) + " |"

    out = [markdown_row(row) for row in header[:1]]
    out.append(indent + "|" + " --- |" * len(spans))
    out += [markdown_row(row) for row in header[1:] + rows]
    return out


def _tables(lines: list[str]) -> list[str]:
    out: list[str] = []
    number = 0
    while number < len(lines):
        line = lines[number]
        if not _BORDER.match(line):
            out.append(line)
            number += 1
            continue
        # a simple table ends at its last border, before a blank line or the text's end
        end = number + 1
        last = number
        while end < len(lines) and lines[end].strip():
            if _BORDER.match(lines[end]):
                last = end
            end += 1
        if last == number:
            out.append(line)
            number += 1
            continue
        if out and out[-1].strip():
            out.append("")
        out += _table(lines[number : last + 1])
        out.append("")
        number = last + 1
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """The indented block after ``start`` (blank lines first): its lines and its end."""
    end = start
    while end < len(lines) and not lines[end].strip():
        end += 1
    block_start = end
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    while end > block_start and not lines[end - 1].strip():
        end -= 1
    return lines[block_start:end], end


def _language(code: str) -> str:
    try:
        ast.parse(code)
    except SyntaxError:
        return "text"
    return "python"


def _fence(code_lines: list[str], indent: str, language: str | None = None) -> list[str]:
    code = textwrap.dedent("\n".join(code_lines))
    language = language or _language(code)
    return [f"{indent}```{language}", *(indent + line for line in code.split("\n")), f"{indent}```"]


def _literal_blocks(lines: list[str]) -> list[str]:
    out: list[str] = []
    number = 0
    while number < len(lines):
        line = lines[number]
        stripped = line.strip()
        directive = re.fullmatch(r"\.\. code-block::\s*(\w*)", stripped)
        literal = stripped.endswith("::") and not stripped.startswith("..")
        if not (directive or literal):
            out.append(line)
            number += 1
            continue
        base = _indent(line)
        code, end = _block(lines, number + 1, base)
        if not code:
            out.append(line)
            number += 1
            continue
        if literal and stripped != "::":
            out.append(line[: line.rstrip().rfind("::")] + ":")
        if out and out[-1].strip():
            out.append("")
        language = directive.group(1) if directive else None
        out += _fence(code, " " * base, language or None)
        out.append("")
        number = end
    return out


def _doctests(lines: list[str]) -> list[str]:
    out: list[str] = []
    in_examples = False
    fence = False
    number = 0
    while number < len(lines):
        line = lines[number]
        if line.lstrip().startswith("```"):
            fence = not fence
        if number + 1 < len(lines) and _SECTION_UNDERLINE.match(lines[number + 1]):
            in_examples = line.strip().lower() in ("examples", "example")
        if fence or in_examples or not line.lstrip().startswith(">>>"):
            out.append(line)
            number += 1
            continue
        base = " " * _indent(line)
        session = []
        while number < len(lines) and lines[number].strip():
            session.append(_DOCTEST_SKIP.sub("", lines[number]))
            number += 1
        if out and out[-1].strip():
            out.append("")
        out += _fence(session, base, "pycon")
        out.append("")
    return [_DOCTEST_SKIP.sub("", line) if ">>>" in line else line for line in out]


def _definition_lists(lines: list[str]) -> list[str]:
    """Terms with their description indented below, in the text before the first section."""
    out: list[str] = []
    fence = False
    after_definition = False
    number = 0
    while number < len(lines):
        line = lines[number]
        if number + 1 < len(lines) and _SECTION_UNDERLINE.match(lines[number + 1]):
            return out + lines[number:]
        if line.lstrip().startswith("```"):
            fence = not fence
        following = lines[number + 1] if number + 1 < len(lines) else ""
        is_term = (
            not fence
            and bool(line.strip())
            and _indent(line) == 0
            and not _LIST_ITEM.match(line)
            and not line.startswith(("|", "```"))
            and bool(following.strip())
            and _indent(following) > 0
            and not following.lstrip().startswith(("```", "|"))
            and (number == 0 or not lines[number - 1].strip() or after_definition)
        )
        if not is_term:
            out.append(line)
            after_definition = False
            number += 1
            continue
        if out and out[-1].strip():
            out.append("")
        out.append(line.strip())
        number += 1
        first = True
        while number < len(lines) and lines[number].strip() and _indent(lines[number]) > 0:
            out.append((":   " if first else "    ") + lines[number].strip())
            first = False
            number += 1
        after_definition = True
    return out


def _lists(lines: list[str]) -> list[str]:
    """Markdown needs a blank line between a paragraph and the list that follows it."""
    out: list[str] = []
    fence = False
    for line in lines:
        if line.lstrip().startswith("```"):
            fence = not fence
        if (
            not fence
            and _LIST_ITEM.match(line)
            and out
            and out[-1].strip()
            and not _LIST_ITEM.match(out[-1])
            and not _continues_item(out)
        ):
            out.append("")
        out.append(line)
    return out


def _continues_item(out: list[str]) -> bool:
    """Whether the last lines of ``out`` are the continuation of a list item."""
    for line in reversed(out):
        if not line.strip():
            return False
        if _LIST_ITEM.match(line):
            return True
        if _indent(line) == 0:
            return False
    return False


_ITEM_SECTIONS = (
    "parameters",
    "other parameters",
    "attributes",
    "returns",
    "yields",
    "receives",
    "raises",
    "warns",
)
_ITEM = re.compile(r"^\*{0,2}[A-Za-z_][\w.]*(?:\s*,\s*\*{0,2}[A-Za-z_][\w.]*)*(?:\s*:.*)?$")


def _stray_paragraphs(lines: list[str]) -> list[str]:
    """A paragraph after a section's items is not an item: give it a Notes heading.

    numpy-style sections end only at the next heading, so prose written after
    the last parameter would be read as more parameters.
    """
    out: list[str] = []
    in_items = False
    for number, line in enumerate(lines):
        following = lines[number + 1] if number + 1 < len(lines) else ""
        if _SECTION_UNDERLINE.match(following):
            in_items = line.strip().lower() in _ITEM_SECTIONS
        elif (
            in_items
            and line.strip()
            and _indent(line) == 0
            and number > 0
            and not lines[number - 1].strip()
            and not _SECTION_UNDERLINE.match(line)
            and not _ITEM.match(line.strip())
        ):
            out += ["Notes", "-----"]
            in_items = False
        out.append(line)
    return out


def convert(text: str, obj: griffe.Object, index: dict[str, str]) -> str:
    """One docstring's reStructuredText markup as Markdown."""
    lines = _stray_paragraphs(text.split("\n"))
    lines = _tables(lines)
    lines = _literal_blocks(lines)
    lines = _doctests(lines)
    lines = _definition_lists(lines)
    lines = _lists(lines)
    return _roles("\n".join(lines), obj, index)
