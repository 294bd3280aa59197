"""Run the evidence_storage API or worker: `python -m services.evidence_storage api|worker`."""

from services.evidence_storage.api import create_app
from services.evidence_storage.bootstrap import SERVICE, bootstrap
from services.evidence_storage.jobs import jobs
from services.evidence_storage.subscriptions import SUBSCRIPTIONS
from shared.launcher import launch

if __name__ == "__main__":
    launch(
        None,
        service=SERVICE,
        bootstrap=bootstrap,
        create_app=create_app,
        subscriptions=SUBSCRIPTIONS,
        jobs=jobs,
    )
