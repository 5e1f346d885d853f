"""Every registry profile as a shape class, for the web UI's class picker (``loadkit ui``).

Locust offers every shape class it finds in a loaded file, so this module makes one per profile
in ``registry.PROFILES`` (``SmokeShape``, ``SpikeShape`` ...) plus ``CustomShape`` (stages from the
form's Stage field): a profile added to the registry shows up here with nothing else to write.
"""

from loadkit import registry
from loadkit.plugin.staged_shape import StagedShape, make_shape_class


class CustomShape(StagedShape):
    """The stages typed into the form's Stage field (``30s:10,1m:50``), k6 style."""


for _name in registry.PROFILES:
    _shape = make_shape_class(_name)
    _shape.__module__ = __name__
    globals()[_shape.__name__] = _shape
