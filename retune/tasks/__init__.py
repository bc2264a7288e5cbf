"""Built-in task plugins. Each module registers its tasks through the ``retune`` entry-point group."""
