"""The engine facade. Filled in as the engine lands."""
