"""Hidden check of one short answer against the key in solutions/."""
from __future__ import annotations

from ..answers import load_key, score
from ..paths import SOLUTIONS_DIR
from . import CheckContext, CheckResult, register
from .answers import read, template


@register("answers.item")
def item(ctx: CheckContext) -> CheckResult:
    """One item of the answers file is right (numbers within tolerance, choices as sets)."""
    file, ident = ctx.probe_args["file"], ctx.test_args["item"]
    answers, _notes, error = read(ctx)
    if error:
        return CheckResult(False, error)
    key = load_key((SOLUTIONS_DIR / file).read_text(encoding="utf-8"), file)
    ok, why = score(template(file)[ident], answers.get(ident), key[ident])
    return CheckResult(ok, f"item {ident}: " + ("right" if ok else why))
