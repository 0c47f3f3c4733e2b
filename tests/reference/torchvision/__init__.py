"""Test-only stand-in for torchvision, so that `from d2l import torch` imports (see ../README.md).

d2l.torch only needs the names to exist at import time; the course never
calls into them, and doing so raises.
"""


class _Absent:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        raise RuntimeError(
            f"torchvision.{self._name}.{attr} is not available: this is the "
            "tests' stand-in for torchvision (see tests/reference/README.md)"
        )


transforms = _Absent("transforms")
datasets = _Absent("datasets")
