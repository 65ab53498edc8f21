"""Reusable widgets: no engine, no pane; a pane gives them rows and reacts to their events."""
