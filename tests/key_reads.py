"""Which config keys a run reads: for the check that every key a user can override reaches something.

While recording, every read of a DictConfig key (attribute, item, ``get``, ``items``, ``OmegaConf.select``)
notes that key's full path (``reads.keys``), and a subtree handed whole to ``instantiate``,
``OmegaConf.to_container`` or ``OmegaConf.to_object`` notes its root (``reads.whole``: everything below it
reaches the object built from it). The whole config turned into a container (the run record and its
fingerprint) counts as no read.
"""

from __future__ import annotations

import contextlib
import re
import sys

import hydra.utils
from omegaconf import DictConfig, OmegaConf


def _full_key(node, key=None) -> str | None:
    try:
        return str(node._get_full_key(key)) if key is not None else str(node._get_full_key(None))
    except Exception:  # a detached node
        return None


@contextlib.contextmanager
def recording_reads(modules: list):
    """Yield a set that fills with the full keys read inside the block; ``modules`` are the modules whose
    ``instantiate`` name is patched too (they imported it by name)."""
    reads = Reads()
    originals = {
        "getattr": DictConfig.__getattr__,
        "getitem": DictConfig.__getitem__,
        "get": DictConfig.get,
        "items": DictConfig.items,
        "select": OmegaConf.select,
        "to_container": OmegaConf.to_container,
        "to_object": OmegaConf.to_object,
    }
    instantiate = hydra.utils.instantiate

    def note(key, whole=False):
        if key:
            (reads.whole if whole else reads.keys).add(key.lstrip("."))

    def items_(self, *args, **kwargs):
        pairs = originals["items"](self, *args, **kwargs)
        for key, _ in pairs:
            note(_full_key(self, key))
        return pairs

    def getattr_(self, key):
        value = originals["getattr"](self, key)
        note(_full_key(self, key))
        return value

    def getitem_(self, key):
        value = originals["getitem"](self, key)
        note(_full_key(self, key))
        return value

    def get_(self, key, default_value=None):
        value = originals["get"](self, key, default_value)
        note(_full_key(self, key))
        return value

    def select_(cfg, key, *args, **kwargs):
        root = _full_key(cfg)
        note(f"{root}.{key}" if root else key)
        return originals["select"](cfg, key, *args, **kwargs)

    def whole(name):
        def call(cfg, *args, **kwargs):
            if isinstance(cfg, DictConfig):
                note(_full_key(cfg), whole=True)
            return originals[name](cfg, *args, **kwargs)

        return staticmethod(call)

    def instantiate_(cfg, *args, **kwargs):
        if isinstance(cfg, DictConfig):
            note(_full_key(cfg), whole=True)
        return instantiate(cfg, *args, **kwargs)

    DictConfig.__getattr__, DictConfig.__getitem__, DictConfig.get = getattr_, getitem_, get_
    DictConfig.items = items_
    OmegaConf.select = staticmethod(select_)
    OmegaConf.to_container, OmegaConf.to_object = whole("to_container"), whole("to_object")
    # modules that imported ``instantiate`` by name, and hydra.utils itself for modules imported in the block
    patched = [
        (m, "instantiate", getattr(m, "instantiate"))
        for m in [*modules, hydra.utils]
        if getattr(m, "instantiate", None) is instantiate
    ]
    for module, name, _ in patched:
        setattr(module, name, instantiate_)
    try:
        yield reads
    finally:
        DictConfig.__getattr__, DictConfig.__getitem__ = originals["getattr"], originals["getitem"]
        DictConfig.get, DictConfig.items = originals["get"], originals["items"]
        OmegaConf.select = staticmethod(originals["select"])
        OmegaConf.to_container = staticmethod(originals["to_container"])
        OmegaConf.to_object = staticmethod(originals["to_object"])
        for module, name, original in patched:
            setattr(module, name, original)
        for module in list(sys.modules.values()):  # modules imported inside the block bound the wrapper
            if getattr(module, "instantiate", None) is instantiate_:
                module.instantiate = instantiate


def leaves(cfg: DictConfig, prefix: str = "") -> dict[str, object]:
    """Full key -> value of every leaf of ``cfg``, interpolations left as written (``${paths.artifacts}/...``)."""
    out = {}
    for key in cfg.keys():
        node = cfg._get_node(key)
        path = f"{prefix}{key}"
        if isinstance(node, DictConfig) and not node._is_none():
            out.update(leaves(node, f"{path}."))
        else:
            out[path] = node._value()
    return out


class Reads:
    def __init__(self):
        self.keys: set[str] = set()
        self.whole: set[str] = set()


def unread(cfg: DictConfig, reads: Reads, skip: tuple[str, ...] = ()) -> list[str]:
    """Leaves of ``cfg`` neither read nor under a subtree read whole; ``skip``: prefixes left out."""

    def under(key: str, roots: set[str]) -> bool:
        parts = key.split(".")
        return any(".".join(parts[:i]) in roots for i in range(1, len(parts) + 1))

    values = leaves(cfg)
    reached = {k for k in values if k in reads.keys or under(k, reads.whole)}
    # A reached leaf that interpolates others (output_dir: ${paths.artifacts}/${stage}) reaches them too.
    while True:
        targets = {
            ref for k in reached if isinstance(values[k], str) for ref in re.findall(r"\$\{([\w.]+)\}", values[k])
        }
        grown = reached | {k for k in values if under(k, targets)}
        if grown == reached:
            break
        reached = grown
    return sorted(k for k in values if not k.startswith(skip) and k not in reached)
