# Replica of the seed's dags/src/model_development.py: pandas and scikit-learn at the top.
import os
import pickle

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler, StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("SEED_DATA", os.path.join(HERE, "..", "..", "..", "..", "dags", "data", "advertising.csv"))
WORKDIR = os.environ.get("SEED_WORKDIR", os.path.join(HERE, "..", "..", "working_data"))
MODEL_DIR = os.environ.get("SEED_MODEL_DIR", os.path.join(HERE, "..", "..", "model"))


def load_data():
    """Load advertising.csv and pickle it for the next task."""
    os.makedirs(WORKDIR, exist_ok=True)
    df = pd.read_csv(DATA)
    path = os.path.join(WORKDIR, "raw.pkl")
    with open(path, "wb") as f:
        pickle.dump(df, f)
    return path


def data_preprocessing(path):
    """Drop the text columns, split 70/30, scale with MinMaxScaler then StandardScaler."""
    with open(path, "rb") as f:
        df = pickle.load(f)
    df = df.drop(["Timestamp", "Ad Topic Line", "Country", "City"], axis=1)
    X = df.drop(["Clicked on Ad"], axis=1)
    y = df["Clicked on Ad"]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=42)
    num_columns = ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"]
    minmax = MinMaxScaler()
    standard = StandardScaler()
    X_train_tr = standard.fit_transform(minmax.fit_transform(X_train[num_columns]))
    X_test_tr = standard.transform(minmax.transform(X_test[num_columns]))
    out = os.path.join(WORKDIR, "preprocessed.pkl")
    with open(out, "wb") as f:
        pickle.dump((X_train_tr, X_test_tr, y_train.values, y_test.values), f)
    return out


def separate_data_outputs(path):
    """Pass-through kept to preserve the DAG's shape."""
    return path


def build_model(path, filename):
    """Fit a LogisticRegression and save it to MODEL_DIR/filename."""
    with open(path, "rb") as f:
        X_train, X_test, y_train, y_test = pickle.load(f)
    model = LogisticRegression()
    model.fit(X_train, y_train)
    os.makedirs(MODEL_DIR, exist_ok=True)
    with open(os.path.join(MODEL_DIR, filename), "wb") as f:
        pickle.dump(model, f)


def load_model(path, filename):
    """Load the saved model and score it on the test set."""
    with open(path, "rb") as f:
        X_train, X_test, y_train, y_test = pickle.load(f)
    with open(os.path.join(MODEL_DIR, filename), "rb") as f:
        model = pickle.load(f)
    predictions = model.predict(X_test)
    score = accuracy_score(y_test, predictions)
    print(f"Model score on test data: {score}")
    return int(np.round(score * 100))
