"""The flagship "visa" example: a seeded generator modelled on the public EasyVisa table
(``conveyor.examples.visa.generate``), its schema, config and derived features.

Nothing is imported here: the project's derive functions live in this package
(``conveyor.examples.visa.features``), and a cached ``conveyor run`` should not pay for pandas.
"""
