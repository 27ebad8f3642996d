"""Real tables that ship inside Python packages, for trying conveyor on data it was not built on."""
