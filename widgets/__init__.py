"""The course's explorers (imported as xai_course.widgets): one module per chapter, built on
the frame in base.py. Importing them fits torch's CPU threads to the container's CPU quota
(see xai_course.threads): on Binder and JupyterHub pods too many threads slow every pass."""

from xai_course.threads import match_cpu_quota

match_cpu_quota()
