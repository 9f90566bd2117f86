"""Shared machinery of the notebook variant catalogues (gan1d, vae).

A variant replaces one graded function; ``passes`` names the checks of that
function's tests that must pass (all others must fail), ``says`` a phrase its
failure messages must contain.
"""
import json
from dataclasses import dataclass

from grader.app.report import test_output


@dataclass(frozen=True)
class Variant:
    name: str
    function: str
    source: str
    passes: frozenset
    says: str = ""


def V(name: str, function: str, source: str, passes: set, says: str = "") -> Variant:
    return Variant(name, function, source, frozenset(passes), says)


def batches(variants: list) -> list[list]:
    """Group variants so that each batch changes each function at most once."""
    out: list[list] = []
    for v in variants:
        for b in out:
            if all(x.function != v.function for x in b):
                b.append(v)
                break
        else:
            out.append([v])
    return out


def replace_function(nb_text: str, name: str, new_source: str) -> str:
    """The notebook with the definition of ``name`` replaced (in whichever cell holds it)."""
    nb = json.loads(nb_text)
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
        if f"def {name}(" in src:
            start = src.index(f"def {name}(")
            nxt = src.find("\ndef ", start + 1)
            rest = "" if nxt == -1 else "\n\n" + src[nxt + 1:]
            cell["source"] = (src[:start] + new_source.strip("\n") + "\n" + rest).splitlines(keepends=True)
            return json.dumps(nb)
    raise KeyError(name)


def assert_graded_as_intended(assignment, result, batch: list) -> None:
    """Untouched functions keep full marks; each variant passes exactly the checks it should."""
    check_of = {f"{p.function}: {t.name}": t.check for p in assignment.parts for t in p.tests}
    changed = {v.function: v for v in batch}
    for t in result.tests:
        if t.manual:
            continue
        v = changed.get(t.tags[0])
        if v is None:
            assert t.passed, (t.name, t.output)
            continue
        text = test_output(t)
        assert t.passed == (check_of[t.name] in v.passes), f"{v.name}: {t.name} passed={t.passed}: {text}"
        if not t.passed and text.startswith("not judged until"):   # a stability test deferring to the value test
            assert "see its value test" in text and check_of[t.name] not in v.passes, (v.name, text)
        elif not t.passed and v.says:
            assert v.says in text, f"{v.name}: expected {v.says!r} in {text!r}"


def assert_covers(variants: list, full: dict) -> None:
    """Every function has a fully correct variant and a wrong one."""
    for fn, checks in full.items():
        mine = [v for v in variants if v.function == fn]
        assert any(v.passes == checks for v in mine), f"no correct variant of {fn}"
        assert any(v.passes != checks for v in mine), f"no wrong variant of {fn}"
