"""Protocols: splits, the model contract, metrics, evaluation, tuning and statistics."""
