"""The scene generator used by benchmarks and tests (DESIGN.md section 4, "Evaluation
discipline"): generated one- and two-person Anny scenes with a ground truth whose contacts
hold, a regressor-like initial pose and 20 noisy LMM answers. Two disjoint seed sets:
``TUNING_SEEDS`` (defaults may only be chosen on these) and ``REPORT_SEEDS`` (only ever
reported). See ``engine.synth.scene``."""

from engine.synth.scene import (
    GENERATOR_VERSION,
    REPORT_SEEDS,
    TUNING_SEEDS,
    Scene,
    SynthContext,
    contact_type_of,
    generate_scene,
)
from engine.synth.types import CONTACT_TYPES, TYPE_NAMES, ContactType, contact_type

__all__ = [
    "CONTACT_TYPES",
    "GENERATOR_VERSION",
    "REPORT_SEEDS",
    "TUNING_SEEDS",
    "TYPE_NAMES",
    "ContactType",
    "Scene",
    "SynthContext",
    "contact_type",
    "contact_type_of",
    "generate_scene",
]
