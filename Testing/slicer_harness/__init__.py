"""Run a Slicer scripted module against Slicer's own Python code, real MRML and Qt/CTK stand-ins (see environment)."""
