"""Sweeps of a chapter over a grid of parameters and seeds, on a Dask cluster: plan the runs
(:mod:`~vaemi.sweep.plan`), run them (:mod:`~vaemi.sweep.run`), tabulate them (:mod:`~vaemi.sweep.tables`),
publish a small record (:mod:`~vaemi.sweep.publish`), from the command line (:mod:`~vaemi.sweep.cli`,
``python -m vaemi.sweep``). Reading published records is :mod:`vaemi.book.records`."""
