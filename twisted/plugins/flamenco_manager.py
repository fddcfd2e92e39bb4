"""Makes `twistd flamenco-manager` available."""

from twisted.application.service import ServiceMaker

flamenco_manager = ServiceMaker(
    "Flamenco Manager",
    "flamenco.tap",
    "Relays render tasks between a Flamenco Server and its Workers.",
    "flamenco-manager",
)
