"""The Ray shell of the events stream's readers: one detached actor on the head runs the
notifier and continuous deployment, each in its own loop."""
from __future__ import annotations

import ray

from gantry import auth
from gantry.actors.loop import start_loop
from gantry.actors.notify.autodeploy import USER, AutoDeployer
from gantry.actors.notify.notifier import Notifier
from gantry.constants import HEAD
from gantry.settings import Settings
from gantry.state import State
from gantry.topology import StackConfig


@ray.remote(num_cpus=0, resources=HEAD, max_restarts=-1, max_task_retries=-1)
class EventReadersActor:
    def __init__(self, stack_file: str):
        stack, settings = StackConfig.load(stack_file), Settings()
        state = State(stack.redis_url)
        secret = stack.jwt_secret()

        def page_url(project: str, kind: str, ident: str) -> str:   # the dashboard's page of a build ("b") or deployment ("d")
            return f"{stack.api_url.rstrip('/')}/ui#/p/{project}/{kind}/{ident}"

        def deploy(project: str, build_id: str) -> dict:   # through the API, as a person's deployment goes
            from gantry.client import InClusterClient
            client = InClusterClient(auth.issue(secret, USER, [project], ttl_s=600))
            return client.deploy(project, build_id, wait_for_freeze=True).model_dump()

        self.notifier = Notifier(state, page_url, max_backoff_s=settings.notify_backoff_max_s)
        self.deployer = AutoDeployer(state, deploy)
        start_loop(self.notifier.tick, lambda: settings.notify_tick_s)
        start_loop(self.deployer.tick, lambda: settings.notify_tick_s)

    def ready(self) -> bool:
        return True
