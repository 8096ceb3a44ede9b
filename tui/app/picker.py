"""The first screen: every bundled and user scenario with its description; a broken file shows
its validation error instead of crashing."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from descent.engine.errors import SpecError
from descent.tui.app.messages import ScenarioPicked


def shown(path) -> str:
    """A path as the user would type it: relative to the current folder, or with ~ for home."""
    path = Path(path)
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            return prefix + str(path.relative_to(base))
        except ValueError:
            continue
    return str(path)


def shown_error(err) -> str:
    """A SpecError's one line, with its file shown like `shown`."""
    if isinstance(err, SpecError) and err.file:
        err = SpecError(err.key, err.message, shown(err.file), err.line)
    return str(err)


def entry_text(path: Path, found) -> Text:
    if isinstance(found, Exception):
        text = Text(f"✗ {path.name}", style="bold red")
        text.append("\n  does not load", style="dim")
        return text
    text = Text(found.name, style="bold")
    first = " ".join(found.description.split()).split(". ")[0]      # the first sentence, in short
    line = f"{path.stem}: {first}" if first else path.stem
    text.append("\n  " + (line[:41] + "…" if len(line) > 42 else line), style="dim")
    return text


def detail_text(path: Path, found) -> Text:
    if isinstance(found, Exception):
        text = Text(f"{shown(path)}\n\n", style="dim")
        text.append("This file does not load:\n", style="bold red")
        text.append(shown_error(found))
        text.append("\n\nFix the file and restart descent, or run `descent validate FILE`.", style="dim")
        return text
    text = Text(found.name + "\n", style="bold")
    text.append(f"{shown(path)}\n\n", style="dim")
    text.append(found.description.strip() + "\n\n")
    layers = ", ".join(str(layer.get("type")) for layer in found.model.layers)
    t = found.training
    text.append(f"data   {found.data.source}\nmodel  {layers}\n", style="")
    text.append(f"train  {t.optimizer} lr {t.lr:g}, batch {t.batch_size}\n")
    if found.knobs:
        text.append("knobs  " + ", ".join(k.label for k in found.knobs) + "\n")
    text.append("\nenter opens it", style="dim")
    return text


class PickerScreen(Screen):
    """Lists `engine.scenario.discover(extra_paths)`; enter posts ScenarioPicked."""

    BINDINGS = [Binding("q", "app.quit", "Quit"), Binding("question_mark", "app.help", "Help")]
    HORIZONTAL_BREAKPOINTS = [(0, "-tiny"), (80, "-fits")]       # under 80x24: a message (descent.tcss)
    VERTICAL_BREAKPOINTS = [(0, "-short"), (24, "-fits")]

    def __init__(self, extra_paths=(), **kwargs):
        super().__init__(**kwargs)
        self.extra_paths = tuple(extra_paths)
        self.found: list = []

    def compose(self) -> ComposeResult:
        from descent.engine.scenario import discover

        self.found = discover(self.extra_paths)
        yield Static("[b]descent[/b]  pick a scenario  [dim](↑↓ move, enter open, q quit)[/dim]",
                     id="picker-title", markup=True)
        yield Static("descent needs a terminal of at least 80x24: make the window larger, or press q to quit.",
                     id="picker-too-small")
        with Horizontal(id="picker-body"):
            options = [Option(entry_text(p, f), id=str(i)) for i, (p, f) in enumerate(self.found)]
            yield OptionList(*options, id="scenario-list")
            with VerticalScroll(id="scenario-detail"):
                yield Static(self._empty() if not self.found else "", id="detail")
        yield Footer()

    def _empty(self) -> str:
        from descent.engine.scenario import search_dirs

        dirs = "\n".join(f"  {d}" for d in search_dirs())
        return f"No scenario files found. descent looks in:\n{dirs}"

    def on_mount(self) -> None:
        if self.found:
            lst = self.query_one(OptionList)
            lst.highlighted = 0
            lst.focus()

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        path, found = self.found[int(event.option.id)]
        self.query_one("#detail", Static).update(detail_text(path, found))

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        from descent.engine.scenario import load

        path, found = self.found[int(event.option.id)]
        detail = self.query_one("#detail", Static)
        if isinstance(found, Exception):
            detail.update(detail_text(path, found))
            self.notify(shown_error(found), markup=False, title="Broken scenario file", severity="error")
            return
        try:
            scenario = load(path)          # now with the model's shapes checked against the data
        except SpecError as e:
            self.found[int(event.option.id)] = (path, e)
            detail.update(detail_text(path, e))
            self.notify(shown_error(e), markup=False, title="Broken scenario file", severity="error")
            return
        self.post_message(ScenarioPicked(scenario))
