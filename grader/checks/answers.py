"""Public check of a short-answers file: it parses and every answer fits its question (not correctness)."""
from __future__ import annotations

from pathlib import Path

from ..answers import AnswersError, Item, load_template, read_answers
from ..paths import STARTER_DIR
from . import CheckContext, CheckResult, register, register_validator


@register_validator("answers")
def validate(arrays: dict, args: dict) -> str | None:
    """Answer parts bring no arrays from a worker: nothing to vet."""
    return None if not arrays else "unexpected arrays for an answers part"


def template(file: str) -> dict[str, Item]:
    """The questions, from the starter's blank answers file (shipped to students)."""
    path = STARTER_DIR / file
    return load_template(path.read_text(encoding="utf-8"), file)


def read(ctx: CheckContext) -> tuple[dict | None, list[str], str | None]:
    """(answers, notes, error) for the student's file; cached per part."""
    if "answers" not in ctx.cache:
        file = ctx.probe_args["file"]
        path = Path(ctx.files_dir or ".") / file
        if not path.is_file():
            ctx.cache["answers"] = (None, [], f"{file} is missing from the submission; "
                                    f"fill in the {file} you were given and submit it")
        else:
            try:
                answers, notes = read_answers(path.read_text(encoding="utf-8", errors="replace"),
                                              template(file), file)
                ctx.cache["answers"] = (answers, notes, None)
            except AnswersError as err:
                ctx.cache["answers"] = (None, [], str(err))
    return ctx.cache["answers"]


@register("answers.format")
def answers_format(ctx: CheckContext) -> CheckResult:
    """The file parses, has only known items, and each answer has the right form for its question."""
    answers, notes, error = read(ctx)
    if error:
        return CheckResult(False, error)
    return CheckResult(True, "; ".join(notes) if notes else "every item is answered in a valid form")
