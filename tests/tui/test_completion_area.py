"""CompletionArea: generated spans through edits, and the partial line-cache invalidation."""

from __future__ import annotations

from textual.app import App, ComposeResult

from tui.widgets.complete.completion_area import CompletionArea


class AreaApp(App[None]):
    CSS = "CompletionArea { height: 12; }"

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return {"generated-text": "#00ff00"}

    def compose(self) -> ComposeResult:
        yield CompletionArea(soft_wrap=True, id="streamed")
        yield CompletionArea(soft_wrap=True, id="fresh")


def screen_text(area: CompletionArea) -> list[str]:
    return [area.render_line(y).text.rstrip() for y in range(area.size.height)]


def same_state(fresh: CompletionArea, area: CompletionArea) -> None:
    fresh.load_text(area.text)
    fresh.read_only = area.read_only
    fresh.show_cursor = area.show_cursor
    fresh.selection = area.selection
    fresh.scroll_to(y=area.scroll_y, animate=False, immediate=True)


async def test_streamed_lines_render_like_a_fresh_widget() -> None:
    # While text streams in, lines above the change come from TextArea's line cache:
    # what is on screen must still be exactly what a widget rendering afresh shows.
    app = AreaApp()
    async with app.run_test(size=(40, 30)) as pilot:
        area = app.query_one("#streamed", CompletionArea)
        fresh = app.query_one("#fresh", CompletionArea)
        area.load_text("A prompt that wraps over more than one row of forty columns")
        area.read_only = True
        area.begin_generation()
        pieces = [" and", " then", " supercalifragilistic", "expialidocious", " goes", "\non\n"]
        for piece in pieces + ["until", " the", " end", " of", " the", " screen."] * 3:
            screen_text(area)  # fill the line cache, as a frame would
            area.append_generated(piece)
            same_state(fresh, area)
            await pilot.pause()
            assert screen_text(area) == screen_text(fresh), piece
        area.end_generation()
        assert area.generated_text.startswith(" and then supercalifragilisticexpialidocious")

        # The person edits inside the first, wrapped, paragraph with the cursor parked.
        area.read_only = False
        area.move_cursor((0, 0))
        screen_text(area)
        area.insert("INSERTED WORDS ", (0, 30), maintain_selection_offset=True)
        same_state(fresh, area)
        await pilot.pause()
        assert screen_text(area) == screen_text(fresh)


async def test_spans_follow_typing_and_undo() -> None:
    app = AreaApp()
    async with app.run_test(size=(40, 12)) as pilot:
        area = app.query_one(CompletionArea)
        area.load_text("Hi")
        area.begin_generation()
        area.append_generated(" there")
        area.end_generation()
        assert area.generated_spans == [(2, 8)]
        area.insert(">>", (0, 0))
        assert area.generated_spans == [(4, 10)]
        area.insert("!", area.document.end)
        assert area.generated_spans == [(4, 10)] and area.text == ">>Hi there!"
        area.undo()
        await pilot.pause()
        assert area.text == ">>Hi there"
        assert area.generated_spans == [(4, 10)]
        area.load_session("saved text", [(6, 10), (8, 99)])
        assert area.generated_spans == [(6, 10)], "clamped and merged"
