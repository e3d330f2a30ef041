"""Benchmark: how long the member page and one expand of the genealogy tree take in a big network.

Builds a synthetic network (members `gen…@bench.local`, created in bulk with their stats rows),
then times, through the real admin views (Django's test client, a bench superuser):

- the member page of a hub with thousands of direct referrals, of a member deep in the tree,
  and of an ordinary member;
- one expand (the children JSON, first page of 200) of each of them.

Writes bench data: run it on a throwaway database.
"""

import random
import statistics
import time
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from accounts.services import NewMember, member_create, members_create_bulk

CHUNK = 5_000
HUBS = 20


class Command(BaseCommand):
    help = "Build an N-member network and time the member page and one genealogy expand."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=100_000)
        parser.add_argument("--repeat", type=int, default=5, help="Requests per timing (the median is shown).")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--chain", type=int, default=500,
                            help="Also a chain this deep under the first hub (the upline of its last member).")

    def handle(self, *args, members, repeat, seed, chain, **options):
        rng = random.Random(seed)
        t0 = time.perf_counter()
        made = self._build(members, rng)
        if chain and not User.objects.filter(email="chain0@bench.local").exists():
            top = User.objects.get(email="gen0@bench.local")
            members_create_bulk(members=[NewMember(email=f"chain{k}@bench.local", first_name=f"Chain{k}",
                                                   sponsor=f"chain{k - 1}@bench.local" if k else top)
                                         for k in range(chain)])
        self.stdout.write(f"network: {made} new members ({User.objects.count()} in all), built in "
                          f"{time.perf_counter() - t0:.1f} s")
        bench = User.objects.filter(email__startswith="gen", email__endswith="@bench.local")
        hub = bench.annotate(n=Count("referrals")).order_by("-n").first()
        deep = User.objects.filter(email__endswith="@bench.local").order_by("-depth").first()
        plain = bench.filter(referrals__isnull=False).annotate(n=Count("referrals")).filter(n__lt=10).first()
        depth = deep.depth if deep else 0
        operator = User.objects.filter(email="bench-operator@bench.local").first() or member_create(
            email="bench-operator@bench.local", password=None, is_staff=True, is_superuser=True)
        client = Client()
        client.force_login(operator)
        self.stdout.write(f"deepest member at depth {depth}")
        for label, user in (("hub", hub), ("deep", deep), ("ordinary", plain)):
            if user is None:
                continue
            kids = User.objects.filter(sponsor=user).count()
            page = self._time(client, f"/admin/accounts/user/{user.pk}/change/", repeat)
            expand = self._time(client, f"/admin/accounts/user/genealogy/{user.pk}/children/", repeat)
            self.stdout.write(f"{label:9} (depth {user.depth}, {kids} direct referrals): member page "
                              f"{page[0]:.1f} ms / {page[1]} queries; expand {expand[0]:.1f} ms / "
                              f"{expand[1]} queries")

    def _time(self, client, url, repeat):
        client.get(url)  # warm (plan cache, templates)
        times = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as q:
                t = time.perf_counter()
                r = client.get(url)
                times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (url, r.status_code)
        return statistics.median(times), len(q)

    def _build(self, n, rng) -> int:
        """A few hubs under the root take many direct referrals; the rest join someone recent,
        so the tree is both wide (hubs with thousands of children) and deep."""
        from mlm.models import MemberStats, Rank

        start = User.objects.filter(email__startswith="gen", email__endswith="@bench.local").count()
        if start >= n:
            return 0
        # Every bench member so far: a User once created, its e-mail while in the batch being built
        # (members_create_bulk takes a sponsor listed earlier in the same call by e-mail).
        members: list = list(User.objects.filter(email__startswith="gen", email__endswith="@bench.local")
                              .order_by("id").only("id", "path", "depth"))
        if len(members) < HUBS:
            members += members_create_bulk(members=[NewMember(email=f"gen{j}@bench.local", first_name=f"Hub{j}")
                                                    for j in range(len(members), HUBS)])
        hubs = members[:HUBS]
        lowest = Rank.objects.order_by("position").first()
        i = len(members)
        while i < n:
            batch, first = [], len(members)
            for j in range(i, min(i + CHUNK, n)):
                if rng.random() < 0.3:
                    sponsor = rng.choice(hubs)
                else:
                    sponsor = members[rng.randrange(max(HUBS, len(members) - 1000), len(members))]
                email = f"gen{j}@bench.local"
                batch.append(NewMember(email=email, sponsor=sponsor, first_name=f"Gen{j}"))
                members.append(email)
            created = members_create_bulk(members=batch)
            members[first:] = created
            MemberStats.objects.bulk_create([
                MemberStats(user_id=u.pk, rank=lowest, pv=Decimal(rng.randrange(0, 5000)),
                            tv=Decimal(rng.randrange(0, 50000))) for u in created], ignore_conflicts=True)
            i += len(batch)
        return n - start
