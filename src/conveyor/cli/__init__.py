"""The conveyor command line (Typer): thin commands over the project API."""
