"""The calibration profile, reloaded when its file (a mounted ConfigMap) changes, never broken by a bad edit.

``ENERGAIZER_PROFILE`` names the profile file; the Helm chart mounts the ConfigMap
``calibrationProfile.configMapName`` there, and the kubelet rewrites the file when the ConfigMap changes.
With ``ENERGAIZER_PROFILE_RELOAD_SECONDS`` > 0 (default 30) the operator estimates with a *validated copy*:
at startup the file must load (else the operator stops, naming the variable); afterwards it is checked every
that many seconds, and a changed file that loads as a profile replaces the copy (AIJobs estimated from then
on use it; a log line names the profile), while one that does not is logged and ignored, the last good
profile staying in use. With 0, the file is read as it is at every estimate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import kopf
from pydantic import ValidationError

from energaizer.errors import EnergaizerError, InvalidInputError
from energaizer.profile import CalibrationProfile, load_profile, save_profile
from energaizer_operator.settings import OperatorSettings

logger = logging.getLogger("energaizer_operator.profile")


class ProfileWatcher:
    """Copies ``source`` to ``target`` whenever ``source`` changes and loads as a calibration profile."""

    def __init__(self, source: Path, target: Path) -> None:
        self.source, self.target = source, target
        self.digest: str | None = None
        self.profile: CalibrationProfile | None = None

    def check(self) -> str | None:
        """Reload if the file changed: ``"loaded"``, ``"rejected: why"``, or None (unchanged)."""
        try:
            data = self.source.read_bytes()
        except OSError as exc:
            return self._reject(f"cannot read {self.source}: {exc.strerror or exc}", None)
        digest = hashlib.sha256(data).hexdigest()
        if digest == self.digest:
            return None
        try:
            profile = load_profile(self.source)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ())) or "profile"
            return self._reject(f"{where}: {err.get('msg', 'invalid value')}", digest)
        except (EnergaizerError, ValueError) as exc:
            return self._reject(str(exc).splitlines()[0][:300], digest)
        tmp = self.target.with_suffix(".tmp")
        save_profile(profile, tmp)
        os.replace(tmp, self.target)
        self.digest, self.profile = digest, profile
        return "loaded"

    def _reject(self, why: str, digest: str | None) -> str:
        if digest is not None:
            self.digest = digest  # report a bad file once, not at every check
        return f"rejected: {why}"


async def _poll(watcher: ProfileWatcher, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        result = await asyncio.to_thread(watcher.check)
        if result == "loaded":
            logger.info("calibration profile reloaded from %s: %s", watcher.source, watcher.profile.name)
        elif result is not None:
            logger.warning("calibration profile %s %s; keeping the previous one", watcher.source, result)


def check_profile_setting(cfg: OperatorSettings, source: str = "ENERGAIZER_PROFILE") -> None:
    """Stop at start, naming ``source`` (the variable, or ``--profile``), when the profile does not load."""
    if not cfg.profile:
        return
    with tempfile.TemporaryDirectory() as tmp:
        result = ProfileWatcher(Path(cfg.profile), Path(tmp) / "profile.json").check()
    if result != "loaded":
        raise InvalidInputError(source, str(result).removeprefix("rejected: "))


def validated_copy(
    cfg: OperatorSettings, source: str = "ENERGAIZER_PROFILE"
) -> tuple[OperatorSettings, ProfileWatcher | None]:
    """Before the operator starts: the settings to run with and the watcher of the profile file.

    With reloading on, the returned settings point at a validated copy of ``ENERGAIZER_PROFILE`` that
    the watcher replaces when the file changes and still loads; every estimate reads that copy. A
    profile that does not load stops the operator here, in one line naming ``source`` (the variable, or
    ``--profile`` where the command line gave the path).
    """
    check_profile_setting(cfg, source)
    if not cfg.profile or cfg.profile_reload_seconds <= 0:
        return cfg, None
    target = Path(tempfile.gettempdir()) / f"energaizer-profile-{os.getpid()}.json"
    watcher = ProfileWatcher(Path(cfg.profile), target)
    result = watcher.check()
    if result != "loaded":
        raise InvalidInputError(source, str(result).removeprefix("rejected: "))
    logger.info("calibration profile %s loaded from %s", watcher.profile.name, cfg.profile)
    return cfg.model_copy(update={"profile": str(target)}), watcher


@kopf.on.startup()
async def profile_startup(memo: kopf.Memo, **_: Any) -> None:
    watcher: ProfileWatcher | None = memo.get("profile_watcher")
    if watcher is not None:
        seconds = memo["state"].settings.profile_reload_seconds
        memo["profile_task"] = asyncio.create_task(_poll(watcher, seconds))


@kopf.on.cleanup()
async def profile_cleanup(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task | None = memo.get("profile_task")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    watcher: ProfileWatcher | None = memo.get("profile_watcher")
    if watcher is not None:
        with contextlib.suppress(OSError):
            watcher.target.unlink()
