# The image of every Airflow component of docker-compose.yaml and of the monitor: the official
# Airflow image at the version pinned in requirements.txt, plus adclick-ops and its dependencies.
# dags/, pipelines/ and config/ are mounted by compose, not copied: editing a pipeline needs no
# rebuild; changing adclick_ops/, requirements.txt or requirements.lock does (`docker compose build`).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

ARG AIRFLOW_VERSION
# pip builds the package in place, so its folder belongs to the airflow user.
USER root
RUN mkdir -p /opt/adclick-ops && chown airflow:0 /opt/adclick-ops
USER airflow

# Installing apache-airflow with the same pin makes pip fail if requirements.txt asks for another
# Airflow than the base image has, instead of silently replacing it. The lock, as constraints,
# gives every package the tested version whatever the base image brings or lacks: without it, a
# base without celery gets the newest celery, which the CeleryExecutor may not import.
COPY --chown=airflow:0 requirements.txt requirements.lock /opt/adclick-ops/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
      -r /opt/adclick-ops/requirements.txt -c /opt/adclick-ops/requirements.lock

# The package last, so that a code change reuses the dependency layer above.
COPY --chown=airflow:0 pyproject.toml /opt/adclick-ops/
COPY --chown=airflow:0 adclick_ops /opt/adclick-ops/adclick_ops
RUN pip install --no-cache-dir --no-deps /opt/adclick-ops
