"""mkdocs hook: the CLI reference in ``cli.md`` is generated from the typer app at build time.

The marker ``<!-- scdiff-cli-reference -->`` is replaced by typer's own Markdown docs of
``scdiff.cli.app`` (the text ``typer scdiff.cli utils docs`` would write), so the page
cannot drift from the installed commands.
"""

from __future__ import annotations

import re

MARKER = "<!-- scdiff-cli-reference -->"


def cli_reference() -> str:
    """Markdown for every command, its arguments and options, headings one level down."""
    import typer
    import typer.main
    from typer.cli import get_docs_for_click

    from scdiff.cli import app

    command = typer.main.get_command(app)
    text = get_docs_for_click(obj=command, ctx=typer.Context(command, info_name="scdiff"),
                              name="scdiff", title="Commands and options")
    lines = []
    for line in text.strip().splitlines():
        if line.startswith("#"):
            line = "#" + line
        elif line.startswith("* `") and "`: " in line:
            # help text may hold <placeholders>; keep them from being read as HTML
            names, help_text = line.split("`: ", 1)
            line = names + "`: " + help_text.replace("<", "&lt;").replace(">", "&gt;")
        lines.append(line)
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    return re.sub(r"\n{3,}", "\n\n", markdown)
