"""Split protocols, one module per family (see :mod:`protocols.splits`, which imports them
all and so fills the registry). ``keys`` holds the (user, item) key helpers shared with the
split card; it must stay free of imports from the rest of the package.
"""
