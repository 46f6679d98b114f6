"""CLI commands, one module per area (demo, emulator, measure, fit, ...)."""
