"""The Textual console. Imports the engine only through its facade, `opsconsole.engine`."""
