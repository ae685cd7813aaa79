"""Great Expectations itself: the engine of record for every check the one pass does not cover.

`gx_judge` validates the persisted batch with one GX `ValidationDefinition` holding the given
checks; a second validation of the failed column checks asks for their offending rows' keys
and `feature_date` (paid on failure only). great_expectations is imported here only, and only
when a check needs it (its import alone costs ~2.5 s).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from featurebank.definitions.expectations import tested_columns
from featurebank.errors import DefinitionError
from featurebank.gate.results import MASK, PARTIAL_UNEXPECTED_COUNT, CheckResult, jsonable

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from featurebank.compile.group import CheckSpec


def expectation_classes() -> dict[str, type]:
    import great_expectations.expectations as gxe

    classes: dict[str, type] = {}
    for attribute in dir(gxe):
        cls = getattr(gxe, attribute)
        name = getattr(cls, "expectation_type", None)
        if attribute.startswith("Expect") and isinstance(name, str):
            classes[name] = cls
    return classes


def build_expectation(classes: dict[str, type], check: CheckSpec) -> Any:
    cls = classes.get(check.expectation)
    if cls is None:
        raise DefinitionError(
            f"{check.origin}: unknown expectation {check.expectation!r}; "
            "see `featurebank validate` for the expectations GX provides"
        )
    try:
        # GX stores suites as JSON: tuples must arrive as lists, or its freshness check sees a
        # stored suite that differs from the one in memory and refuses to validate.
        arguments = {k: _lists(v) for k, v in check.arguments.items()}
        return cls(**arguments, severity="warning" if check.severity == "warn" else "critical")
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DefinitionError(
            f"{check.origin}: {check.expectation} does not accept {check.arguments}: {first}"
        ) from None


def gx_judge(batch: DataFrame, checks: tuple[CheckSpec, ...], name: str,
           pii: frozenset[str] = frozenset(), index: tuple[str, ...] = ()) -> list[CheckResult]:
    """Run every check through one GX validation of the (persisted) batch; mask `pii` columns'
    values; name the offending rows of failed column checks by their `index` columns."""
    if not checks:
        return []
    basic = {"result_format": "BASIC", "partial_unexpected_count": PARTIAL_UNEXPECTED_COUNT}
    results = [_check_result(c, raw, pii) for c, raw in zip(checks, _validate(batch, checks, name, basic))]
    failing = [i for i, r in enumerate(results) if not r.success and r.unexpected_count and r.exception is None]
    if not failing or not index:
        return results
    rows_format = basic | {"result_format": "SUMMARY", "unexpected_index_column_names": list(index)}
    try:
        again = _validate(batch, tuple(checks[i] for i in failing), f"{name}-rows", rows_format)
    except Exception:  # noqa: BLE001 - the verdict stands without its example rows
        return results
    for i, raw in zip(failing, again):
        rows = (raw.get("result") or {}).get("partial_unexpected_index_list") or []
        masked = tuple({k: MASK if k in pii else v for k, v in row.items()} for row in rows if isinstance(row, dict))
        results[i] = replace(results[i], example_rows=tuple(jsonable(list(masked))))
    return results


def _validate(batch: DataFrame, checks: tuple[CheckSpec, ...], name: str,
              result_format: dict[str, Any]) -> list[dict[str, Any]]:
    """GX's raw result of each check (in the order of `checks`), from one validation of `batch`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    classes = expectation_classes()
    expectations = [build_expectation(classes, c) for c in checks]
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    unique = f"{name}-{uuid.uuid4().hex[:8]}"
    source = context.data_sources.add_spark(name=f"featurebank-{unique}", persist=False)
    definition = source.add_dataframe_asset(name="batch").add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add(gx.ExpectationSuite(name=f"suite-{unique}"))
    index_by_id: dict[str, int] = {}
    for index, expectation in enumerate(expectations):
        added = suite.add_expectation(expectation)
        index_by_id[str(added.id)] = index
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"validation-{unique}", data=definition, suite=suite)
    )
    outcome = validation.run(batch_parameters={"dataframe": batch}, result_format=result_format)
    raws: list[dict[str, Any]] = [{} for _ in checks]
    for item in outcome.results:
        config = item.expectation_config
        assert config is not None  # GX returns one result per expectation, carrying its config
        raws[index_by_id[str(config.id)]] = item.to_json_dict()
    return raws


def _check_result(check: CheckSpec, raw: dict[str, Any], pii: frozenset[str] = frozenset()) -> CheckResult:
    result = raw.get("result") or {}
    info = raw.get("exception_info") or {}
    exception = info.get("exception_message") if info.get("raised_exception") else None
    arguments = check.arguments
    columns = tested_columns(arguments)
    column = ",".join(columns) if columns else None
    unexpected_count = result.get("unexpected_count")
    unexpected_percent = result.get("unexpected_percent")
    observed = result.get("observed_value")
    examples = tuple(jsonable(result.get("partial_unexpected_list") or []))
    if pii.intersection(columns):  # values of personal data stay in the tables
        observed = None if observed is None else MASK
        examples = tuple(MASK for _ in examples)
    return CheckResult(
        expectation=check.expectation,
        column=column,
        severity=check.severity,
        success=bool(raw.get("success")) and exception is None,
        observed_value=observed,
        unexpected_count=None if unexpected_count is None else int(unexpected_count),
        unexpected_percent=None if unexpected_percent is None else float(unexpected_percent),
        element_count=result.get("element_count"),
        partial_unexpected=examples,
        kwargs=arguments,
        origin=check.origin,
        exception=(exception.splitlines()[0] if exception else None),
    )




def _lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return value
