"""Run the intake API or worker: `python -m services.intake api|worker`."""

from services.intake.api import create_app
from services.intake.bootstrap import SERVICE, bootstrap
from services.intake.subscriptions import SUBSCRIPTIONS, jobs
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
