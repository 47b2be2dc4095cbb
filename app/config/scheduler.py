"""Cron jobs whose schedule is a business setting (`... Cron` keys), for every domain.

    scheduler = Scheduler(runtime)
    scheduler.add_cron_job("inventory-sync", "Inventory Sync Cron", run_inventory_audit)
    await scheduler.start()      # in the lifespan; a no-op when BRIDGE_SCHEDULER_ENABLED=false
    ...
    await scheduler.shutdown()

Each job function receives the cron slot it was fired for (UTC, to the minute), so replicas
firing the same slot can agree on it. The scheduler does not lock: a job takes its own
`app.platform.locks.job_lock`. Cron expressions are read in UTC. A changed cron key
reschedules the job at once in the process that changed it (`ConfigService.on_change`) and
within `refresh_seconds` in every other replica. Which jobs run is wired by the shell
(`app.shell.runtime.running`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from app.config.service import BridgeConfig
from app.platform.logging import get_logger

if TYPE_CHECKING:
    from app.config.runtime import ConfigRuntime

JobFunc = Callable[[datetime], Awaitable[None]]
_log = get_logger("app.scheduler")


@dataclass
class _CronJob:
    job_id: str
    config_key: str
    func: JobFunc
    cron: str | None = None


def parse_cron(expression: str) -> CronTrigger:
    """A 5-field crontab expression evaluated in UTC."""
    return CronTrigger.from_crontab(expression, timezone=UTC)


def due_slot(trigger: CronTrigger, now: datetime) -> datetime:
    """The slot a firing at `now` belongs to: the cron time of this minute, else the minute."""
    minute = now.replace(second=0, microsecond=0)
    due = trigger.get_next_fire_time(None, minute)
    return due if due is not None and due <= now else minute


class Scheduler:
    """An APScheduler `AsyncIOScheduler` whose cron jobs follow configuration keys."""

    def __init__(self, runtime: ConfigRuntime, *, refresh_seconds: float = 30.0) -> None:
        self.runtime = runtime
        self.refresh_seconds = refresh_seconds
        self._jobs: dict[str, _CronJob] = {}
        self._aps = AsyncIOScheduler(timezone=UTC)
        self._listening = False

    @property
    def running(self) -> bool:
        return bool(self._aps.running)

    def add_cron_job(self, job_id: str, config_key: str, func: JobFunc) -> None:
        """Run `func(slot)` on the cron expression stored under `config_key` (short name)."""
        self._jobs[job_id] = _CronJob(job_id, config_key, func)

    async def start(self) -> None:
        """Schedule every job from the current settings; nothing when the scheduler is off."""
        if not self.runtime.settings.scheduler_enabled:
            _log.info("scheduler.disabled")
            return
        config = await self.runtime.config.snapshot(self.runtime.sessions)
        self._aps.start()
        await self.apply(config)
        self._aps.add_job(
            self._refresh,
            "interval",
            seconds=self.refresh_seconds,
            id="scheduler.refresh",
            coalesce=True,
            max_instances=1,
        )
        if not self._listening:
            self.runtime.config.on_change(self.apply)
            self._listening = True
        _log.info("scheduler.started", jobs=sorted(self._jobs))

    async def shutdown(self) -> None:
        """Stop firing; jobs already running finish or are cancelled by their owners."""
        if self._aps.running:
            self._aps.shutdown(wait=False)

    async def apply(self, config: BridgeConfig) -> None:
        """(Re)schedule every job whose cron setting differs from what is scheduled."""
        if not self._aps.running:
            return
        for job in self._jobs.values():
            cron = config.get(job.config_key)
            if cron == job.cron:
                continue
            self._schedule(job, cron)

    def next_run_time(self, job_id: str) -> datetime | None:
        aps_job = self._aps.get_job(job_id)
        return aps_job.next_run_time if aps_job is not None else None

    async def fire(self, job_id: str, now: datetime | None = None) -> None:
        """Run a job as the scheduler would at `now` (default: the present)."""
        job = self._jobs[job_id]
        now = now or datetime.now(UTC)
        slot = (
            due_slot(parse_cron(job.cron), now)
            if job.cron
            else now.replace(second=0, microsecond=0)
        )
        try:
            await job.func(slot)
        except Exception:
            _log.exception("scheduler.job_failed", job=job_id, slot=slot.isoformat())

    def _schedule(self, job: _CronJob, cron: str | None) -> None:
        if self._aps.get_job(job.job_id) is not None:
            self._aps.remove_job(job.job_id)
        job.cron = cron
        if not cron:
            _log.info("scheduler.job_unscheduled", job=job.job_id)
            return
        try:
            trigger = parse_cron(cron)
        except ValueError:
            job.cron = None
            _log.error("scheduler.bad_cron", job=job.job_id, key=job.config_key)
            return
        self._aps.add_job(
            self.fire,
            trigger,
            args=[job.job_id],
            id=job.job_id,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=300,
        )
        _log.info(
            "scheduler.job_scheduled",
            job=job.job_id,
            cron=cron,
            next_run=str(self.next_run_time(job.job_id)),
        )

    async def _refresh(self) -> None:
        try:
            await self.apply(await self.runtime.config.snapshot(self.runtime.sessions))
        except Exception:
            _log.warning("scheduler.refresh_failed", exc_info=True)
