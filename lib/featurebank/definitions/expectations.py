"""The Great Expectations 1.x expectations a check may name, and their keyword arguments.

`validate` must not import great_expectations (it is slow and pulls in half of PyData), so
this reads a static catalogue, `expectations.json`, generated from the installed GX by
`python -m featurebank.definitions.expectations` (a test checks it is current).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from collections.abc import Mapping
from typing import Any

CATALOGUE = Path(__file__).with_name("expectations.json")

# Fields every GX expectation has that are GX's bookkeeping, not the user's to set in a check
# (featurebank's own `severity:` key sits beside the expectation, not inside its arguments).
INTERNAL_FIELDS = frozenset(
    {"id", "meta", "notes", "result_format", "description", "catch_exceptions", "rendered_content",
     "severity", "windows", "batch_id", "library_metadata"}
)
# Arguments that name one column of the batch, or a list of them.
COLUMN_ARGUMENTS = frozenset({"column", "column_A", "column_B"})
COLUMN_LIST_ARGUMENTS = frozenset({"column_list", "column_set"})
_TESTED_COLUMN_ORDER = ("column", "column_A", "column_B", "column_list", "column_set")


def tested_columns(arguments: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns a check tests, from its arguments: the first of `column`, `column_A`,
    `column_B`, `column_list`, `column_set` it has (a list gives several); () for a table check.
    The one rule the gate's results and the catalog's pages name a check's column by."""
    for key in _TESTED_COLUMN_ORDER:
        if key in arguments:
            value = arguments[key]
            return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else (str(value),)
    return ()


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation: its snake_case name and its allowed and required arguments."""

    name: str
    arguments: tuple[str, ...]
    required: tuple[str, ...]


# featurebank's own checks, judged by featurebank beside GX's (the gate's `gate.drift`):
# a feature's distribution against the profiles of the last published dates (population stability index).
DRIFT_EXPECTATION = "expect_column_drift_to_be_below"
OWN_EXPECTATIONS = {
    DRIFT_EXPECTATION: ExpectationSpec(DRIFT_EXPECTATION, ("column", "threshold", "reference_dates", "min_rows", "bins"),
                                       ("column",)),
}
# (argument, smallest value, whether it may be fractional) of featurebank's own checks
OWN_ARGUMENT_RANGES = {"threshold": (0.0, True), "reference_dates": (1, False), "min_rows": (1, False),
                       "bins": (2, False)}


def own_argument_problems(expectation: str, arguments: Mapping[str, Any]) -> tuple[str, ...]:
    """Why the arguments of one of featurebank's own checks are wrong (empty: they are fine)."""
    if expectation not in OWN_EXPECTATIONS:
        return ()
    problems = []
    for name, (least, fractional) in OWN_ARGUMENT_RANGES.items():
        if name not in arguments:
            continue
        value = arguments[name]
        kinds = (int, float) if fractional else (int,)
        if isinstance(value, bool) or not isinstance(value, kinds) or value < least or (fractional and value == least):
            kind = "a number above" if fractional else "a whole number of at least"
            problems.append(f"has {name}: {value!r}; write {kind} {least}")
    return tuple(problems)


@lru_cache(maxsize=1)
def catalogue() -> dict[str, ExpectationSpec]:
    """Every known expectation by snake_case name: GX's (read once from `expectations.json`) and
    featurebank's own (`OWN_EXPECTATIONS`)."""
    # importlib.resources, not CATALOGUE: on EMR the package is imported from a wheel on
    # `--py-files` (a zip), where no file path exists.
    text = resources.files("featurebank.definitions").joinpath("expectations.json").read_text(encoding="utf-8")
    raw: dict[str, Any] = json.loads(text)
    return {
        name: ExpectationSpec(name, tuple(spec["arguments"]), tuple(spec["required"]))
        for name, spec in raw["expectations"].items()
    } | OWN_EXPECTATIONS


def generate() -> dict[str, Any]:
    """Build the catalogue from the installed great_expectations (imports GX; not for validate)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations: dict[str, Any] = {}
    for attribute in sorted(dir(gxe)):
        cls = getattr(gxe, attribute)
        name = getattr(cls, "expectation_type", None)
        fields = getattr(cls, "__fields__", None)
        if not attribute.startswith("Expect") or not isinstance(name, str) or not name or not fields:
            continue
        arguments = [f for f in fields if f not in INTERNAL_FIELDS]
        required = [f for f in arguments if fields[f].required]
        expectations[name] = {"arguments": arguments, "required": required}
    return {"great_expectations": gx.__version__, "expectations": dict(sorted(expectations.items()))}


def main(argv: list[str]) -> int:
    """Rewrite `expectations.json` from the installed GX (`--check`: only compare, exit 1 if stale)."""
    text = json.dumps(generate(), indent=1, sort_keys=False) + "\n"
    if "--check" in argv:
        current = CATALOGUE.read_text(encoding="utf-8") if CATALOGUE.exists() else ""
        if current != text:
            print(f"{CATALOGUE} is stale; run python -m featurebank.definitions.expectations", file=sys.stderr)
            return 1
        return 0
    CATALOGUE.write_text(text, encoding="utf-8")
    print(f"wrote {CATALOGUE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
