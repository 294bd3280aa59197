"""Run the notification API or worker: `python -m services.notification api|worker`."""

from services.notification.api import create_app
from services.notification.bootstrap import SERVICE, bootstrap
from services.notification.subscriptions import SUBSCRIPTIONS, jobs
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
