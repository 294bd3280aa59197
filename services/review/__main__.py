"""Run the review API or worker: `python -m services.review api|worker`."""

from services.review.api import create_app
from services.review.bootstrap import SERVICE, bootstrap
from services.review.subscriptions import SUBSCRIPTIONS, jobs
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
