"""featurebank: declarative, point-in-time-correct feature pipelines on Spark and Delta Lake.

    >>> import featurebank as fb
    >>> store = fb.FeatureStore("path/to/project", env="local")
    >>> store.groups()                      # names, from the definitions (no Spark)
    >>> store.describe("customer_card_spend")  # features in words, Delta version (no Spark)

`FeatureStore` is imported on first use (PEP 562 `__getattr__`), so `import featurebank`
never starts Spark nor imports pyspark; `__dir__` lists it anyway, so `dir(featurebank)` and a
notebook's tab completion show it. README "In a notebook" has a whole example.
"""

from typing import Any

__all__ = ["FeatureStore"]



def __getattr__(name: str) -> Any:
    if name == "FeatureStore":
        from featurebank.training.api import FeatureStore

        globals()[name] = FeatureStore  # later look-ups skip this function
        return FeatureStore
    raise AttributeError(f"module 'featurebank' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names are not in the module's namespace until first used: list them anyway.
    return sorted((set(globals()) - {"Any"}) | set(__all__))
