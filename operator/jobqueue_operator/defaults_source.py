"""The scaling defaults, kept in step with the operator's defaults ConfigMap.

The ValidatingAdmissionPolicy judges new JobQueues by that ConfigMap, so the
operator re-reads it (one GET every :data:`REFRESH_S`) and applies the same
numbers. Without a ConfigMap (none configured, not there, or unreadable) the
environment's defaults apply, as before ConfigMaps existed. A bad ConfigMap is
logged in one line naming the key, and the last good defaults stay in force.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from jobqueue_operator.ports import ConfigMapPort, KubeError
from jobqueue_operator.settings import OperatorSettings

REFRESH_S = 30.0
ENVIRONMENT = "operator environment"

log = logging.getLogger(__name__)


@dataclass
class DefaultsSource:
    """The environment's settings plus the ConfigMap's scaling defaults on top."""

    base: OperatorSettings
    current: OperatorSettings = field(init=False)
    #: Where the scaling defaults in force come from (``status.effective.defaultsSource``).
    origin: str = field(default=ENVIRONMENT, init=False)
    _last_problem: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.current = self.base

    @property
    def configmap(self) -> tuple[str, str] | None:
        """(namespace, name) of the ConfigMap, or ``None`` when none is configured."""
        ref = self.base.defaults_configmap.strip()
        if not ref:
            return None
        namespace, _, name = ref.rpartition("/")
        return (namespace or "default", name)

    async def refresh(self, kube: ConfigMapPort) -> None:
        """Read the ConfigMap once and apply it; problems are logged once each."""
        ref = self.configmap
        if ref is None:
            return
        label = f"ConfigMap {ref[0]}/{ref[1]}"
        try:
            data = await kube.read_configmap(*ref)
        except KubeError as exc:
            self._report(f"{exc}; keeping the defaults from the {self.origin}")
            return
        if data is None:
            self.current, self.origin = self.base, ENVIRONMENT
            self._report(f"{label} not found; using the defaults from the {ENVIRONMENT}")
            return
        try:
            self.current = self.base.with_defaults_from(data)
        except ValueError as exc:
            self._report(f"{label} is invalid: {exc}; keeping the defaults from the {self.origin}")
            return
        self.origin = label
        self._report(None)

    async def run(
        self, kube: ConfigMapPort, apply: Callable[[OperatorSettings, str], None]
    ) -> None:
        """Refresh every :data:`REFRESH_S` seconds until cancelled, handing each result on."""
        while True:
            await self.refresh(kube)
            apply(self.current, self.origin)
            await asyncio.sleep(REFRESH_S)

    def _report(self, problem: str | None) -> None:
        if problem != self._last_problem and problem is not None:
            log.warning("Scaling defaults: %s", problem)
        self._last_problem = problem
