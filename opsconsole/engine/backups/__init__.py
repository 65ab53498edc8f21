"""Backups that are proven restorable: file archives and PostgreSQL dumps, each verified by a real
read or restore before it counts, with retention and restore.

The engine never imports the screen; the console reaches these through the engine's facade.
"""
