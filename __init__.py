"""descent: train neural networks in the terminal and watch them learn.

The repository's folders install as subpackages: `engine/` is `descent.engine`, `tui/` is
`descent.tui`, `scenarios/` is `descent.scenarios` (see pyproject.toml). The public API is
importable from here; each name loads its module on first use, so `import descent` stays light:

    from descent import Session, load_scenario, load_checkpoint, Monitor
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> "module:attribute", loaded on first access (PEP 562)
_EXPORTS = {
    "Session": "descent.engine.session:Session",
    "load_scenario": "descent.engine.scenario:load",
    "load_checkpoint": "descent.engine.checkpoint:load",
    "torch_state_dict": "descent.engine.checkpoint:torch_state_dict",
    "DescentError": "descent.engine.errors:DescentError",
    "Monitor": "descent.engine.monitor:Monitor",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'descent' has no attribute {name!r}")
    module, attr = _EXPORTS[name].split(":")
    value = getattr(import_module(module), attr)
    globals()[name] = value
    return value
