"""The plan's default rows (ranks, investment tiers, settings) and the beat schedules.

Everything is get_or_create: running it on a database an operator has edited changes
nothing they changed, and periodic tasks are never deleted or recreated.
"""

from decimal import Decimal

RANKS = [
    # code, name, rate, lifetime PV, TV, active direct partners
    ("start", "Start", "0.04", 0, 0, 0),
    ("builder", "Builder", "0.08", 1000, 5000, 2),
    ("growth", "Growth", "0.12", 2500, 25000, 4),
    ("leadership", "Leadership", "0.16", 5000, 125000, 6),
    ("director", "Director", "0.18", 10000, 500000, 10),
]
TIERS = [(1000, "0.05"), (5000, "0.10"), (25000, "0.15"), (125000, "0.20")]

PAYOUT_SCHEDULE = "mlm: monthly payout of held bonuses"
LOYALTY_SCHEDULE = "mlm: daily loyalty streaks"
HEARTBEAT_SCHEDULE = "common: beat heartbeat"

SCHEDULES = [
    # name, task, crontab (minute, hour, day_of_month) or interval minutes, description
    ("mlm: daily rank advancement", "mlm.ranks_update", ("0", "0", "*"), None,
     "Daily at 00:00 UTC: members active this month advance to the highest rank they qualify for."),
    ("mlm: monthly global pool", "mlm.global_pool_run", ("0", "0", "3"), None,
     "On the 3rd at 00:00 UTC: pays the global pool of the previous month (once per month)."),
    (PAYOUT_SCHEDULE, "mlm.payout_run_due", ("30", "0", "*"), None,
     "Daily at 00:30 UTC: from the plan's payout day on, pays the previous month's held bonuses once "
     "(monthly payout mode; a no-op otherwise)."),
    (LOYALTY_SCHEDULE, "mlm.loyalty_streaks_update", ("5", "0", "*"), None,
     "Daily at 00:05 UTC: stores every member's loyalty streak (Grace Day months in a row); on the day "
     "after the Grace Day (the 2nd by default) a member without a Grace Day purchase that month drops to 0."),
    ("mlm: sweep unprocessed purchases", "mlm.purchases_sweep", None, 5,
     "Every 5 minutes: processes counted purchases whose message was lost."),
    ("mlm: drain team-volume queue", "mlm.team_volume_drain", None, 5,
     "Every 5 minutes: recalculates TV of queued members whose message was lost."),
    # Not mlm's, but seeded here too so a flushed database gets it back with the others (the
    # `common` migration 0003 seeds it on a fresh one): /health/ reads the stamp it leaves.
    (HEARTBEAT_SCHEDULE, "common.beat_heartbeat", None, 1,
     "Stamps the time in the cache: /health/ reports beat down when stale."),
]


def seed(apps, schema_editor=None):
    """Create the defaults that are missing. `apps` is a migration's app registry or
    django.apps.apps (the post_migrate restore)."""
    Rank = apps.get_model("mlm", "Rank")
    InvestmentTier = apps.get_model("mlm", "InvestmentTier")
    PlanSettings = apps.get_model("mlm", "PlanSettings")
    for position, (code, name, rate, pv, tv, partners) in enumerate(RANKS, start=1):
        Rank.objects.get_or_create(code=code, defaults={
            "name": name, "rate": Decimal(rate), "pv_required": pv, "tv_required": tv,
            "partners_required": partners, "position": position * 10})
    for threshold, rate in TIERS:
        InvestmentTier.objects.get_or_create(threshold=threshold, defaults={"rate": Decimal(rate)})
    PlanSettings.objects.get_or_create(pk=1)
    schedules_seed(apps)


def schedules_seed(apps, schema_editor=None, *, names=None):
    """Create the beat rows of SCHEDULES (those named in `names`, default all) that are
    missing. A later migration adding a schedule seeds only its own row, so a default an
    operator deleted on purpose is not brought back."""
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, cron, every, description in SCHEDULES:
        if names is not None and name not in names:
            continue
        if PeriodicTask.objects.filter(name=name).exists():
            continue  # an operator's edits survive
        schedule = {}
        if cron:
            minute, hour, day = cron
            fields = {"minute": minute, "hour": hour, "day_of_month": day, "month_of_year": "*",
                      "day_of_week": "*", "timezone": "UTC"}
            schedule["crontab"] = (CrontabSchedule.objects.filter(**fields).first()
                                   or CrontabSchedule.objects.create(**fields))
        else:
            schedule["interval"] = (IntervalSchedule.objects.filter(every=every, period="minutes").first()
                                    or IntervalSchedule.objects.create(every=every, period="minutes"))
        PeriodicTask.objects.create(name=name, task=task, description=description, enabled=True, **schedule)
