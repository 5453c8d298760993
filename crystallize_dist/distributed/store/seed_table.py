"""A run's seed table in its manifest (``manifest["seeds"]``): a JSON list of the seed of each
replicate, or, for a run of more than ``SEED_TABLE_LIST_LIMIT`` replicates whose seeds are
all integers in [0, 2**63), the seeds packed little-endian and base64-encoded:
``{"uint32": "<base64>"}`` when they all fit in 32 bits (seeds ``derive_seed`` makes do),
else ``{"int64": "<base64>"}``. A reader that does not need the table (``status``) then
parses one string instead of a million numbers; the manifest's signature covers either form.
"""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from crystallize_dist import constants as C

#: packed form -> (array typecode, bytes per seed)
_FORMS = {"uint32": ("I", 4), "int64": ("q", 8)}


def pack_seeds(seeds: Sequence[int]) -> list[int] | dict[str, str]:
    """The manifest form of the seed table ``seeds`` (see the module docstring)."""
    if len(seeds) <= C.SEED_TABLE_LIST_LIMIT or not all(
        type(s) is int and 0 <= s < 2**63 for s in seeds
    ):
        return list(seeds)
    form = "uint32" if max(seeds) < 2**32 else "int64"
    code, size = _FORMS[form]
    packed = array(code, seeds)
    if packed.itemsize != size:  # the platform's unsigned int is not 32 bits
        form, packed = "int64", array("q", seeds)
    if sys.byteorder == "big":
        packed.byteswap()
    return {form: base64.b64encode(packed.tobytes()).decode("ascii")}


def is_seed_table(value: Any) -> bool:
    """A value of either form (its numbers are checked where they are used)."""
    if type(value) is list:
        return True
    return (
        type(value) is dict
        and len(value) == 1
        and all(k in _FORMS and type(v) is str for k, v in value.items())
    )


def manifest_seeds(manifest: Mapping[str, Any]) -> list[Any]:
    """The seed of each replicate, from ``manifest``'s table of either form (an empty list
    when it has none or the packed form does not decode)."""
    table = manifest.get("seeds")
    if type(table) is list:
        return table
    if type(table) is not dict or not is_seed_table(table):
        return []
    ((form, text),) = table.items()
    code, size = _FORMS[form]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return []
    packed = array(code)
    if len(raw) % size or packed.itemsize != size:
        return []
    packed.frombytes(raw)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tolist()
