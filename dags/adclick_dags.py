"""Airflow DAGs of adclick-ops, rendered from the validated YAML files in pipelines/ by dag-factory.

Nothing about the pipelines is written here: edit pipelines/*.yaml and run `adclick-ops validate`.
"""

# Airflow's DAG processor imports the airflow.* modules named in a DAG file once, in its long-lived
# process ([dag_processor] parsing_pre_import_modules), so that each parse of the file skips them.
# These are the operators the pipelines use and the Airflow modules dag-factory imports, less the
# standard provider's sensors.python: it imports a path Airflow 3.3 deprecated, and the warning would
# land in every parse log (the loader imports it under a narrow filter instead).
import airflow.providers.common.sql.sensors.sql  # noqa: F401
import airflow.providers.smtp.notifications.smtp  # noqa: F401
import airflow.providers.smtp.operators.smtp  # noqa: F401
import airflow.providers.standard.operators.python  # noqa: F401
import airflow.providers.standard.operators.trigger_dagrun  # noqa: F401
import airflow.sdk.definitions.variable  # noqa: F401
import airflow.timetables.assets  # noqa: F401
import airflow.timetables.trigger  # noqa: F401
import airflow.version  # noqa: F401

# A task process forked from a scheduler or worker that preloaded adclick-ops imports it afresh if a
# file of it changed since (adclick_ops.preload); this runs before anything else of the package.
import adclick_ops.preload  # isort: skip

adclick_ops.preload.refresh()

from adclick_ops.render import render  # noqa: E402

render(globals(), dag_file=__file__)
adclick_ops.preload.freeze_heap("parsed")
