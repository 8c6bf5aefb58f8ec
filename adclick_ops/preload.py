"""Task processes that start warm, and still run the code as it is on disk.

Airflow forks every task process from one long-lived process: the scheduler under the
LocalExecutor, a worker under the CeleryExecutor. Each task process first parses
dags/adclick_dags.py to find its task, which imports adclick-ops, dag-factory, pydantic and the
operators: 0.1 to 0.2 s of a task that takes 0.2 to 0.4 s in all. `preload_for_command`, called from
config/airflow_local_settings.py when that long-lived process starts, imports those modules there
once, so that every task process inherits them (docs/performance.md, "Warm task processes").

Edited code still runs. `preload` notes the size and modification time of the file of every module
of adclick-ops and dag-factory then loaded, and `refresh`, called at the top of the DAG file before
anything else of the package, compares them in the task process: when a file changed or went away,
the task process drops every module of the two packages and the parse imports them from disk again.
Other libraries (pydantic, Airflow's providers) are upgraded as Airflow itself is: with a restart.

Set ADCLICK_OPS_PRELOAD=false to leave the task processes cold.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Iterable, Sequence

log = logging.getLogger(__name__)

ENV = "ADCLICK_OPS_PRELOAD"
_ON, _OFF = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# What a task's parse of dags/adclick_dags.py imports: the operators the pipelines name (as listed at the
# top of that file), the renderer (dag-factory, pydantic, the config models) and the callables of the tasks.
MODULES = (
    "airflow.providers.smtp.notifications.smtp",
    "airflow.providers.smtp.operators.smtp",
    "airflow.providers.standard.operators.python",
    "airflow.providers.standard.operators.trigger_dagrun",
    "adclick_ops.render",
    "dagfactory.dagbuilder",
    "adclick_ops.tasks",
    "adclick_ops.operators",
    "adclick_ops.notify",
    "adclick_ops.record",
    "adclick_ops.failures",
    "adclick_ops.config.estimator_rules",
)
# The packages whose edited files a task process must see without a restart.
TRACKED = ("adclick_ops", "dagfactory")

Stamp = tuple[int, int] | None  # (st_mtime_ns, st_size) of a module's file; None when it cannot be read
_stamps: dict[str, tuple[str, Stamp]] = {}  # module -> (its file, its stamp when preloaded)
_tracked: tuple[str, ...] = ()


def _stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _in(name: str, packages: Iterable[str]) -> bool:
    return name.partition(".")[0] in packages


def preload(modules: Sequence[str] | None = None, tracked: Sequence[str] = TRACKED) -> list[str]:
    """Import `modules` (MODULES by default) and note the files of every loaded module of the `tracked` packages; the modules added.

    If one import fails, the modules of the `tracked` packages it added are dropped again, so that no
    half-imported package stays behind, and the error is raised.
    """
    global _tracked
    before = set(sys.modules)
    try:
        with warnings.catch_warnings():
            # the deprecations these imports raise (dag-factory's Airflow 2 paths) are the parse's to show
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            for name in MODULES if modules is None else modules:
                importlib.import_module(name)
    except BaseException:
        for name in set(sys.modules) - before:
            if _in(name, tracked):
                del sys.modules[name]
        raise
    _stamps.clear()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and _in(name, tracked):
            _stamps[name] = (file, _stamp(file))
    _tracked = tuple(tracked)
    return sorted(set(sys.modules) - before)


def changed() -> list[str]:
    """The preloaded modules whose file is not what it was at preload (edited, replaced or removed)."""
    return sorted(name for name, (file, stamp) in _stamps.items() if stamp is None or _stamp(file) != stamp)


def refresh() -> list[str]:
    """In a process that inherited a preload: if a tracked file changed since, drop every module of the
    tracked packages, so that the next imports read the files as they are now. Returns the changed modules."""
    stale = changed()
    if stale:
        for name in [n for n in sys.modules if _in(n, _tracked)]:
            del sys.modules[name]
        importlib.invalidate_caches()
        log.info("%s changed since the scheduler or worker started; importing %s afresh", ", ".join(stale), " and ".join(_tracked))
    _stamps.clear()  # checked once per process: a task process parses the DAG file once
    return stale


def _wanted(argv: Sequence[str]) -> bool:
    """True in the process that forks task processes: `airflow scheduler` with a LocalExecutor, `airflow celery worker`."""
    if list(argv[1:3]) == ["celery", "worker"]:
        return True
    if list(argv[1:2]) != ["scheduler"]:
        return False
    from airflow.configuration import conf

    return "LocalExecutor" in conf.get("core", "executor", fallback="")


def preload_for_command(argv: Sequence[str]) -> list[str]:
    """Preload in the scheduler of a LocalExecutor or a Celery worker, unless ADCLICK_OPS_PRELOAD is false.

    A failure only costs the speed: it is logged, and the task processes import what they need themselves.
    """
    setting = os.environ.get(ENV, "true").strip().lower()
    if setting not in _ON + _OFF:
        sys.stderr.write(f"adclick-ops: {ENV}={os.environ[ENV]!r} is not true or false; preloading as by default\n")
    if setting in _OFF or not _wanted(argv):
        return []
    try:
        added = preload()
    except Exception as exc:  # a broken module is reported by the DAG processor and the task, with its file and line
        log.warning(
            "adclick-ops: modules not preloaded for the task processes (%s: %s); each task imports them itself", type(exc).__name__, exc
        )
        return []
    # Airflow imports its local settings before it sets up logging: this line goes to the process's stderr
    sys.stderr.write(f"adclick-ops: {len(added)} modules preloaded for the task processes ({ENV}=false turns this off)\n")
    return added


_frozen: set[str] = set()


def freeze_heap(moment: str) -> None:
    """`gc.freeze()`, once per process for each `moment`: "parsed" (the DAG file has built its DAGs) and "task"
    (the first task of ours starts).

    Every object alive then (Airflow's modules, its in-process API, the parsed DAGs) leaves the garbage
    collector's reach. A full collection walks every object it can reach, and a task's imports (pandas,
    scikit-learn) set off several: without this, `airflow dags test Airflow_Lab2` spent about 1.8 s of its
    13 s collecting (docs/performance.md, "Collections"). Reference counting still frees frozen objects;
    only a reference cycle that was already garbage at that moment is never freed. A DAG processor parses
    each file in a short-lived child, so the freeze ends with it.
    """
    if moment not in _frozen:
        _frozen.add(moment)
        gc.freeze()
