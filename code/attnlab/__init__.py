"""attnlab: the library behind the course "Attention, step by step".

Modules, in the order the dependencies flow:
``corpus`` and ``synthetic`` (data) -> ``vocab`` -> ``batching`` -> ``data``
-> ``training``, ``metrics``, ``checkpoints``, ``results`` -> ``plots`` -> ``notebook``.
"""

__version__ = "0.1.0"
