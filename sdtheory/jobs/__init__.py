"""The jobs, one module (or package) each, each holding the job's configuration, its run and
its result: :mod:`~sdtheory.jobs.simulate`, :mod:`~sdtheory.jobs.sweep` (phase diagrams),
:mod:`~sdtheory.jobs.verify`, :mod:`~sdtheory.jobs.probe`, :mod:`~sdtheory.jobs.optimize` and
:mod:`~sdtheory.jobs.figures`. The command line (:mod:`sdtheory.cli`) parses arguments and
calls them; :mod:`sdtheory.plots` draws their results files; :mod:`sdtheory.results` owns what
goes into those files."""
