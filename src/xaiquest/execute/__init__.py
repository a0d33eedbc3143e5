"""Runs the audit's units on several processes, machines or Slurm jobs (``executor.backend``).

The stages declare their units and the units they read (``stage_units``); :mod:`.plan` turns them
into a DAG, :mod:`.scheduler` hands every unit whose inputs exist to a backend (a process pool, Ray
tasks or Submitit jobs: :mod:`.backends`), and each unit runs in :mod:`.worker` through the very
same stage code as an inline run, so the results do not depend on where a unit ran. The run
store stays the single source of truth: a worker's files are atomic, its completion record is
appended under a lock, and a claim per unit keeps two processes from computing it at once.
"""
