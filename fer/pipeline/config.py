"""Reading sweep and option files: YAML with numbers like 1e-4 read as floats."""

from __future__ import annotations

import re

import yaml


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but reading `1e-4` as a float (YAML 1.2 and JSON do; PyYAML's
    YAML 1.1 rules demand `1.0e-4` and would hand a learning rate over as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str):
    """Parse YAML (or JSON, e.g. a run's config.json) with numbers like 1e-4 read as floats."""
    return yaml.load(text, Loader=_Loader)
