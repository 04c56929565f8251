"""Templates of ``python -m protocols new-model`` (``*.tmpl`` files, read with importlib.resources).

A package of its own so that the templates ship with the wheel (package data ``*.tmpl``).
Placeholders follow :class:`string.Template`: ``${name}`` (registered model name),
``${module}``, ``${package}``, ``${class_name}``, ``${kind}``; a literal dollar is ``$$``.
"""
