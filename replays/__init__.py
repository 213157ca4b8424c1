"""replays: see ../shared/DESIGN.md. Filled in by a later issue."""
