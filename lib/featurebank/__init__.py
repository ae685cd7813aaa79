"""featurebank: declarative, point-in-time-correct feature pipelines on Spark and Delta Lake.

    >>> import featurebank as fb
    >>> store = fb.FeatureStore("path/to/project", env="local")

`FeatureStore` is imported on first use, so `import featurebank` never starts Spark.
"""

from typing import Any

__all__ = ["FeatureStore"]


def __getattr__(name: str) -> Any:
    if name == "FeatureStore":
        from featurebank.training.api import FeatureStore

        return FeatureStore
    raise AttributeError(f"module 'featurebank' has no attribute {name!r}")
