#!/usr/bin/python3
"""Trains the smoke-test model: scikit-learn's SVC on the iris data set, saved as model.joblib.

KServe's sklearn server (kserve/sklearnserver) loads /mnt/models/model.joblib and answers the v1
protocol: POST /v1/models/sklearn-iris:predict {"instances": [[6.8, 2.8, 4.8, 1.4]]} -> {"predictions": [1]}.
Uses Debian's python3-sklearn (apt-get install python3-sklearn): the iris data ships inside
scikit-learn, so no download is needed. Writes models/sklearn-iris/model.joblib and PROVENANCE.
"""
import os
import platform
import sys

import joblib
import sklearn
from sklearn import datasets, svm

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "models", "sklearn-iris")
os.makedirs(out, exist_ok=True)
iris = datasets.load_iris()
# gamma and C as in KServe's own sklearn example; random_state fixed so a re-run gives the same model
clf = svm.SVC(gamma="scale", random_state=0)
clf.fit(iris.data, iris.target)
joblib.dump(clf, os.path.join(out, "model.joblib"))
checks = clf.predict([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6], [5.1, 3.5, 1.4, 0.2]]).tolist()
with open(os.path.join(out, "PROVENANCE"), "w") as f:
    f.write(
        "model.joblib: sklearn.svm.SVC(gamma='scale', random_state=0) fitted on sklearn.datasets.load_iris()\n"
        f"trained by scripts/train-iris.py with Python {platform.python_version()}, scikit-learn {sklearn.__version__}, joblib {joblib.__version__} (Debian python3-sklearn)\n"
        f"predict([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6], [5.1, 3.5, 1.4, 0.2]]) = {checks}\n"
        "joblib pickles are tied to the scikit-learn that wrote them: the site's kserve/sklearnserver loads this file with\n"
        "its own scikit-learn, which may warn (InconsistentVersionWarning); for a production model train with that version\n"
    )
print(f"wrote {out}/model.joblib; predictions {checks}")
