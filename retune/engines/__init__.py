"""Engines: the machinery that trains models (``retune.engines.training``) and runs them."""
