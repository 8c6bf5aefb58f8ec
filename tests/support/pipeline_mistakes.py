"""Mistakes users make in pipeline files, and what validate must say about each: shared by the tests of
validate's messages and of its output formats."""

from __future__ import annotations

LAB2 = "airflow_lab2.yaml"

# (name, old text, new text, field path expected in the message, words expected in the message)
MISTAKES = [
    ("test_size above 1", "test_size: 0.3", "test_size: 1.5", "Airflow_Lab2.training.split.test_size", "less than 1; found 1.5"),
    ("test_size zero", "test_size: 0.3", "test_size: 0", "Airflow_Lab2.training.split.test_size", "greater than 0"),
    ("unknown scaler", "scalers: [minmax, standard]", "scalers: [minmax, zscale]", "Airflow_Lab2.training.scalers[1]", "'zscale'"),
    (
        "duplicate scaler",
        "scalers: [minmax, standard]",
        "scalers: [minmax, minmax]",
        "Airflow_Lab2.training.scalers",
        "scalers listed more than once: 'minmax'",
    ),
    ("unknown estimator", "name: logistic_regression", "name: xgboost", "Airflow_Lab2.training.estimator.name", "'xgboost'"),
    ("unknown estimator parameter", "max_iter: 1000", "max_iterations: 1000", "Airflow_Lab2.training.estimator", "'max_iterations'"),
    ("unknown field", "  catchup: false\n", "  catchup: false\n  colour: blue\n", "Airflow_Lab2.colour", "unknown field 'colour'"),
    (
        "dangling dependency",
        "dependencies: [load_data_task]",
        "dependencies: [load_dta_task]",
        "Airflow_Lab2.tasks.data_preprocessing_task.dependencies[0]",
        "'load_dta_task' is not a task of this DAG",
    ),
    (
        "cycle",
        "      python_callable: adclick_ops.tasks.load_data\n",
        "      python_callable: adclick_ops.tasks.load_data\n      dependencies: [load_model_task]\n",
        "Airflow_Lab2.tasks.load_data_task.dependencies",
        "the tasks form a cycle: load_data_task -> data_preprocessing_task",
    ),
    ("duplicate task id", "    send_email:\n", "    load_model_task:\n", "", "duplicate key 'load_model_task'"),
    ("invalid e-mail address", "ml-team@example.com", "ml-team-at-example", "Airflow_Lab2.notify.email.to[0]", "not an e-mail address"),
    (
        "callable outside the allow-list",
        "python_callable: adclick_ops.tasks.load_data",
        "python_callable: os.system",
        "Airflow_Lab2.tasks.load_data_task.python_callable",
        "'os.system' is not allowed",
    ),
    (
        "operator outside the allow-list",
        "operator: adclick_ops.operators.ReportEmailOperator",
        "operator: airflow.providers.standard.operators.bash.BashOperator",
        "Airflow_Lab2.tasks.send_email.operator",
        "is not allowed",
    ),
    (
        "empty feature list",
        "    features:\n      - Daily Time Spent on Site\n      - Age\n      - Area Income\n      - Daily Internet Usage\n      - Male\n",
        "    features: []\n",
        "Airflow_Lab2.training.features",
        "at least 1 item",
    ),
    (
        "duplicate feature",
        "      - Male\n",
        "      - Male\n      - Age\n",
        "Airflow_Lab2.training.features",
        "features listed more than once: 'Age'",
    ),
    ("wrong type", "max_active_runs: 1", "max_active_runs: many", "Airflow_Lab2.max_active_runs", "found 'many'"),
    (
        "trigger target not declared",
        "dag_id: Airflow_Lab2_Flask",
        "dag_id: Airflow_Lab3",
        "Airflow_Lab2.trigger.dag_id",
        "'Airflow_Lab3' is not declared",
    ),
    (
        "missing operator",
        "    send_email:\n      operator: adclick_ops.operators.ReportEmailOperator\n",
        "    send_email:\n",
        "Airflow_Lab2.tasks.send_email.operator",
        "required field is missing",
    ),
    ("target among features", "target: Clicked on Ad", "target: Age", "Airflow_Lab2.training", "also listed in features"),
    (
        "negative retries",
        "    retries: 1\n    retry_delay_sec: 30\n\n",
        "    retries: -1\n    retry_delay_sec: 30\n\n",
        "Airflow_Lab2.default_args.retries",
        "greater than or equal to 0",
    ),
    (
        "path escaping the project",
        "dataset: dags/data/advertising.csv",
        "dataset: ../../etc/passwd",
        "Airflow_Lab2.training.dataset",
        "climbs out",
    ),
    ("unknown schedule preset", 'schedule: "@daily"', 'schedule: "@sometimes"', "Airflow_Lab2.schedule", "unknown schedule preset"),
    (
        "unknown trigger rule",
        "trigger_rule: all_done",
        "trigger_rule: whenever",
        "Airflow_Lab2.tasks.my_trigger_task.trigger_rule",
        "unknown trigger_rule",
    ),
    (
        "python object tag",
        "max_iter: 1000",
        "max_iter: !!python/object/apply:os.system [id]",
        "",
        "is not allowed; pipeline files hold plain values only",
    ),
    (
        "value of no allowed form",
        "max_iter: 1000",
        "max_iter: [1, 2]",
        "Airflow_Lab2.training.estimator.params.max_iter",
        "found [1, 2]; expected one of: bool, float, int, str",
    ),
    ("alias", "tags: [adclick, ml]", "tags: &t [adclick, ml]\n  description2: *t", "", "aliases"),
    ("broken YAML syntax", "catchup: false", "catchup: [false", "", "invalid YAML"),
    (
        "missing section for an e-mail task",
        "  notify:\n    email:\n      to: [ml-team@example.com]\n",
        "  notify_off:\n    email:\n      to: [ml-team@example.com]\n",
        "",
        "unknown field 'notify_off'",
    ),
]
