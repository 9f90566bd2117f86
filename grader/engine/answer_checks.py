"""Built-in checks of a short-answers file (``answers.format``, ``answers.item``).

Any assignment with an ``answers:`` file may use them on a part whose probe is
``answers``: no student code runs, the file is read (within bounds) and scored
here. ``answers.item`` needs the key in solutions/ and is hidden.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from ..sandbox import forkserver
from .answers import AnswersError, Item, load_key, load_template, read_answers, score
from .checks import CheckContext, CheckResult, check, specs_in
from .config import solution_path


def template_of(a) -> dict[str, Item]:
    """The questions of assignment ``a``, from the starter's blank answers file (shipped to students)."""
    path = Path(a.folder).parent.parent / a.starter / a.answers
    return load_template(path.read_text(encoding="utf-8"), a.answers)


def template(ctx: CheckContext) -> dict[str, Item]:
    return template_of(ctx.assignment)


def read(ctx: CheckContext) -> tuple[dict | None, list[str], str | None]:
    """(answers, notes, error) for the student's file; cached per part."""
    if "answers" not in ctx.cache:
        file = ctx.assignment.answers
        path = Path(ctx.files_dir or ".") / file
        if not path.is_file():
            ctx.cache["answers"] = (None, [], f"{file} is missing from the submission; "
                                    f"fill in the {file} you were given and submit it")
        else:
            try:
                answers, notes = read_answers(path.read_text(encoding="utf-8", errors="replace"),
                                              template(ctx), file)
                ctx.cache["answers"] = (answers, notes, None)
            except AnswersError as err:
                ctx.cache["answers"] = (None, [], str(err))
    return ctx.cache["answers"]


@check("format")
def answers_format(ctx: CheckContext) -> CheckResult:
    """The file parses, has only known items, and each answer has the right form for its question."""
    answers, notes, error = read(ctx)
    if error:
        return CheckResult(False, error)
    unanswered = [ident for ident, value in answers.items() if value is None]
    if unanswered:   # valid, but not finished: `grader check` shows the hint as a note
        return CheckResult(True, "every answer given has a valid form",
                           hint=f"not answered yet: {', '.join(unanswered)}")
    return CheckResult(True, "every item is answered in a valid form")


@check("item")
def answers_item(ctx: CheckContext) -> CheckResult:
    """One item of the answers file is right (numbers within tolerance, choices as sets)."""
    a, ident = ctx.assignment, ctx.test_args["item"]
    answers, _notes, error = read(ctx)
    if error:
        return CheckResult(False, error)
    key_path = solution_path(a, a.answers, Path(a.folder).parent)
    forkserver.taint(f"the answer key of {a.name}")
    key = load_key(key_path.read_text(encoding="utf-8"), a.answers)
    ok, why = score(template(ctx)[ident], answers.get(ident), key[ident])
    return CheckResult(ok, f"item {ident}: " + ("right" if ok else why))


HIDDEN = {"item"}   # needs the key in solutions/
SPECS = {name: replace(spec, hidden=name in HIDDEN) for name, spec in specs_in(sys.modules[__name__], False).items()}
