"""Explain one flag for one user: what the console's consumers get and what a flagd (OpenFeature)
consumer gets, with the rule that decided each and the user's bucket.

The two can differ: the console's JSON file is read with Unleash's bucketing, flagd's `fractional`
places users differently, so the same 25% is not the same quarter of users. The screen says so when
it happens for this user. The engine call runs off the event loop; an error (a flag no longer used
in the environment, an unknown environment) is shown here, in the engine's words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from opsconsole.engine import EvalContext

from ..format import decided_why, format_flag_value, plain, variants_text
from ..handle import ConsoleAccess

if TYPE_CHECKING:
    from opsconsole.engine import EvalContext, Evaluation, FlagDef, FlagState

CONSUMERS = ("console (Unleash)", "flagd (fractional)")
"""Who gets each answer: the console's JSON file (its readers, the demo service, the canary) with
Unleash's bucketing, and an OpenFeature flagd provider with flagd's `fractional`."""
LABEL_WIDTH = 20


def answer_text(value: object) -> str:
    """What a consumer gets: true / false, or the variant's name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def targeting_text(defn: FlagDef) -> str:
    """ "targeting: users a, b · regions eu" or ""."""
    t = defn.targeting
    if not t:
        return ""
    parts = [
        f"{label} {', '.join(sorted(values))}"
        for label, values in (("users", t.users), ("tenants", t.tenants), ("regions", t.regions))
        if values
    ]
    return "targeting: " + " · ".join(parts)


def explanation(state: FlagState, console: Evaluation, flagd: Evaluation) -> Text:
    """The two answers, one block each, and a line when they differ."""
    out = Text()
    out.append_text(plain(f"now {format_flag_value(state.value, state.type)}: {decided_why(state)}", "dim"))
    for label, ev in zip(CONSUMERS, (console, flagd), strict=True):
        out.append("\n")
        out.append(f"{label:<{LABEL_WIDTH}}", style="bold")
        out.append_text(plain(answer_text(ev.value), "bold"))
        facts = [f"rule {ev.rule}"]
        if ev.bucket is not None:
            facts.append(f"bucket {ev.bucket}")
        if ev.threshold is not None:
            facts.append(f"threshold {ev.threshold}%")
        out.append_text(plain(" · " + " · ".join(facts)))
        out.append("\n" + " " * LABEL_WIDTH)
        out.append_text(plain(ev.detail))
    out.append("\n")
    if console.value != flagd.value:
        out.append_text(
            plain(
                f"differ: the console's consumers get {answer_text(console.value)}, a flagd consumer gets "
                f"{answer_text(flagd.value)} (the two bucketings place this user differently)",
                "bold",
                wrap=True,
            )
        )
    else:
        out.append_text(plain("both consumers give this user the same answer", "dim"))
    return out


class FlagExplainScreen(ConsoleAccess, ModalScreen[None]):
    """`x` on a flag: ask for a user id (tenant and region optional), show both answers."""

    BINDINGS = [Binding("escape", "dismiss", "Back", id="back")]
    DEFAULT_CSS = """
    #flag-explain .dialog-title { padding: 0; }
    #explain-who { height: auto; }
    #explain-who Input { width: 1fr; }
    #explain-who #explain-user { width: 2fr; }
    #explain-result { height: auto; padding: 1 0 0 0; }
    #flag-explain .dialog-keys { padding: 0; }
    """

    def __init__(self, environment: str, flag: FlagDef, state: FlagState) -> None:
        super().__init__()
        self.environment = environment
        self.flag = flag
        self.state = state

    def compose(self) -> ComposeResult:
        f = self.flag
        with Vertical(classes="dialog -wide", id="flag-explain"):
            yield Static(plain(f"Explain {f.name} in {self.environment} for a user"), classes="dialog-title")
            about = [f.type, f"risk {f.risk}"]
            if f.owner:
                about.append(f"owner {f.owner}")
            if f.variants:
                about.append(f"variants {variants_text(f)}")
            if targeting := targeting_text(f):
                about.append(targeting)
            yield Static(plain(" · ".join(about)), classes="dialog-hint")
            with Horizontal(id="explain-who"):
                yield Input(placeholder="user id (targetingKey)", id="explain-user")
                yield Input(placeholder="tenant (optional)", id="explain-tenant")
                yield Input(placeholder="region (optional)", id="explain-region")
            yield Static(plain("Type a user id and press Enter.", "dim"), id="explain-result")
            yield Static(id="error", classes="dialog-error")
            yield Static("Enter explains · Tab next field · Esc back", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#explain-user", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()  # Enter in any of the three fields explains
        self.explain()

    def context(self) -> EvalContext:
        """The EvalContext from the inputs; an empty field is "not given"."""

        def given(field: str) -> str | None:
            return self.query_one(f"#explain-{field}", Input).value.strip() or None

        return EvalContext(given("user"), given("tenant"), given("region"))

    def explain(self) -> None:
        self.show_error("")
        self.evaluate(self.context())

    @work(thread=True, exclusive=True, group="flag-explain", exit_on_error=False)
    def evaluate(self, ctx: EvalContext) -> None:
        engine = self.ops.engine
        try:
            state, console, flagd = engine.evaluate_flag(self.environment, self.flag.name, ctx)
        except Exception as exc:  # NotFound (flag or environment gone), a store failure: say it here
            self.app.call_from_thread(self.show_error, f"cannot explain {self.flag.name}: {exc}")
            return
        self.app.call_from_thread(self.show, ctx, state, console, flagd)

    def show(self, ctx: EvalContext, state: FlagState, console: Evaluation, flagd: Evaluation) -> None:
        who = ctx.user or "a user without an id"
        head = Text()
        head.append_text(plain(f"for {who}", "bold"))
        extra = [f"{k} {v}" for k, v in (("tenant", ctx.tenant), ("region", ctx.region)) if v]
        if extra:
            head.append_text(plain(" (" + ", ".join(extra) + ")"))
        head.append("\n")
        head.append_text(explanation(state, console, flagd))
        self.query_one("#explain-result", Static).update(head)

    def show_error(self, message: str) -> None:
        self.query_one("#error", Static).update(plain(message, wrap=True))
