"""Demo data: projects, options, an operator login and a small funded network. Idempotent."""

from decimal import Decimal

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from accounts.services import member_create, wallet_deposit
from purchases.models import Option, Project
from purchases.services import purchase_create

OPERATOR_EMAIL = "admin@example.com"
OPERATOR_PASSWORD = "admin12345"  # noqa: S105 - demo login, printed by `make run`
MEMBER_PASSWORD = "demo-pass-123"  # noqa: S105

PROJECTS = {
    # name: (unit price, [(option name, pack shares)])
    "JETUP": (Decimal("0.05"), [("Starter", 2_000), ("Builder", 20_000), ("Pioneer", 100_000)]),
    "AQUIX": (Decimal("0.03"), [("Starter", 5_000), ("Builder", 50_000), ("Pioneer", 200_000)]),
}

# email, sponsor email (None: the root), deposit, (project, option, packs) to buy
NETWORK = [
    ("alice@example.com", None, Decimal("20000"), ("JETUP", "Builder", 2)),
    ("bob@example.com", "alice@example.com", Decimal("10000"), ("JETUP", "Builder", 1)),
    ("carol@example.com", "bob@example.com", Decimal("8000"), ("AQUIX", "Builder", 1)),
    ("dave@example.com", "bob@example.com", Decimal("6000"), ("JETUP", "Starter", 3)),
    ("erin@example.com", "carol@example.com", Decimal("5000"), ("AQUIX", "Starter", 2)),
]


class Command(BaseCommand):
    help = "Create demo projects, options, an operator login and a small network (idempotent)."

    def handle(self, *args, **options):
        with transaction.atomic():
            for name, (unit, packs) in PROJECTS.items():
                project, _ = Project.objects.get_or_create(name=name, defaults={
                    "description": f"{name} project options at {unit} USD per share."})
                for option_name, shares in packs:
                    Option.objects.get_or_create(project=project, name=option_name, defaults={
                        "pack_shares": shares, "pack_price": unit * shares})

            if not User.objects.filter(email=OPERATOR_EMAIL).exists():
                member_create(email=OPERATOR_EMAIL, password=OPERATOR_PASSWORD, first_name="Operator",
                              is_staff=True, is_superuser=True)

        for email, sponsor_email, deposit, (project, option_name, packs) in NETWORK:
            user = User.objects.filter(email=email).first()
            if user is None:
                sponsor = User.objects.get(email=sponsor_email) if sponsor_email else None
                user = member_create(email=email, password=MEMBER_PASSWORD, sponsor=sponsor,
                                     first_name=email.split("@")[0].title())
            wallet_deposit(user=user, amount=deposit, reference=f"demo:{email}")
            option = Option.objects.get(project__name=project, name=option_name)
            purchase_create(user=user, option=option, packs=packs, idempotency_key=f"demo:{email}:1")

        call_command("tokens_seed_demo")  # the buy-back's demo revenue

        self.stdout.write(self.style.SUCCESS(
            f"Demo data ready. Operator: {OPERATOR_EMAIL} / {OPERATOR_PASSWORD}; "
            f"members: {', '.join(e for e, *_ in NETWORK)} / {MEMBER_PASSWORD}"))
