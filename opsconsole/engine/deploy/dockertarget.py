"""A Docker engine through the docker SDK: lazily imported, every call in a daemon thread bounded by a
timeout (a stuck engine gives a DeployError, never a hang). Lists, stops and removes only containers
carrying the console's labels."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .model import (
    LABEL_DEPLOY,
    LABEL_MANAGED,
    LABEL_REPLICA,
    LABEL_SERVICE,
    DeployError,
    ServiceSpec,
)

T = TypeVar("T")


def _in_thread(what: str, timeout: float, fn: Callable[[], T]) -> T:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"docker: {what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise DeployError(f"docker: {what} did not answer within {timeout:g}s")
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, DeployError):
            raise exc
        raise DeployError(f"docker: {what}: {_explain(exc)}") from exc
    return box["value"]  # type: ignore[no-any-return]


def _explain(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip() or type(exc).__name__
    return " ".join(text.split())


class DockerTarget:
    """One Docker engine. `host`: unix:///path or tcp://host:port; None: DOCKER_HOST, else the default."""

    def __init__(self, host: str | None, timeout: float = 30.0) -> None:
        self.host = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.timeout = timeout
        self._client: Any = None

    def call(self, what: str, fn: Callable[[], T], timeout: float | None = None) -> T:
        return _in_thread(what, timeout or self.timeout, fn)

    @property
    def client(self) -> Any:
        if self._client is None:
            if self.host.startswith("unix://"):
                path = self.host.removeprefix("unix://")
                if not os.path.exists(path):
                    raise DeployError(
                        f"docker: no engine socket at {path} (is dockerd running? set the service's "
                        "docker.host or DOCKER_HOST)"
                    )
            try:
                import docker
            except ImportError as exc:
                raise DeployError(
                    "docker: the docker SDK is not installed (pip install 'opsconsole[docker]')"
                ) from exc

            def connect() -> Any:
                client = docker.DockerClient(base_url=self.host, timeout=int(max(1, self.timeout)))
                client.ping()
                return client

            self._client = self.call(f"connect to {self.host}", connect)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------------------------- images

    def image_id(self, ref: str) -> str | None:
        """The ID of image `ref` on this engine, None when it has none (nothing is pulled)."""
        self.client  # noqa: B018 - connects first: a missing engine or SDK is a DeployError
        import docker.errors

        def get() -> str | None:
            try:
                return str(self.client.images.get(ref).id)
            except docker.errors.ImageNotFound:
                return None

        return self.call(f"look up image {ref}", get)

    def tag(self, image_id: str, ref: str) -> None:
        repository, _, tag = ref.rpartition(":")
        self.call(
            f"tag {image_id[:19]} as {ref}", lambda: self.client.images.get(image_id).tag(repository, tag)
        )

    # --------------------------------------------------------------------------------- containers

    def managed(self, service: str) -> list[Any]:
        """The service's containers (running or not) that carry the console's labels, by replica. One
        removed while they are listed (by a deploy or a canary's settle in another thread) is left out."""
        filters = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_SERVICE}={service}"]}
        found = self.call(
            f"list containers of {service}",
            lambda: self.client.containers.list(all=True, filters=filters, ignore_removed=True),
        )
        return sorted(found, key=lambda c: int(c.labels.get(LABEL_REPLICA, "0")))

    def start(self, spec: ServiceSpec, ref: str, replica: int, deploy_id: str, env: dict[str, str]) -> Any:
        """Create and start replica `replica` of `spec` from image `ref`. `env` holds the secrets'
        values: passed to the engine, never kept."""
        labels = {
            **spec.labels,
            LABEL_MANAGED: "true",
            LABEL_SERVICE: spec.name,
            LABEL_DEPLOY: deploy_id,
            LABEL_REPLICA: str(replica),
        }
        name = f"opsc-{spec.name}-{replica}-{deploy_id[-6:]}"

        def run() -> Any:
            return self.client.containers.run(
                ref,
                command=list(spec.command) if spec.command else None,
                name=name,
                detach=True,
                labels=labels,
                environment=env,
                network_mode=spec.network,
            )

        return self.call(f"start {name} from {ref}", run)

    def remove(self, container: Any, stop_timeout: float) -> None:
        """Stop and remove one managed container (refuses any other)."""
        if container.labels.get(LABEL_MANAGED) != "true":
            raise DeployError(f"docker: container {container.name} is not the console's; left alone")

        def stop_remove() -> None:
            container.stop(timeout=int(stop_timeout))
            container.remove(force=True)

        self.call(f"stop {container.name}", stop_remove, timeout=self.timeout + stop_timeout)

    def state(self, container: Any) -> dict[str, Any]:
        """The container's State (Status, ExitCode, Health...) as the engine reports it now."""

        def read() -> dict[str, Any]:
            container.reload()
            return dict(container.attrs.get("State") or {})

        return self.call(f"inspect {container.name}", read)

    def logs_tail(self, container: Any, lines: int = 5) -> str:
        try:
            raw = self.call(f"logs of {container.name}", lambda: container.logs(tail=lines), timeout=5.0)
        except DeployError:
            return ""
        return " | ".join(str(raw.decode("utf-8", "replace")).split("\n")).strip(" |")
