"""factory-boy factories. Members and purchases go through the services, so the
tree paths, ledger rows and signals are the real ones."""

from decimal import Decimal

import factory

from accounts.models import User
from accounts.services import member_create, wallet_deposit
from purchases.models import Option, Project


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"member{n}@example.com")
    password = "pass-word-123"
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    sponsor = None

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        balance = kwargs.pop("balance", None)
        user = member_create(**kwargs)
        if balance:
            wallet_deposit(user=user, amount=Decimal(balance), reference=f"factory:{user.pk}")
            user.refresh_from_db()
        return user


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Project {n}")


class OptionFactory(factory.django.DjangoModelFactory):
    """Default: 1,000 shares for 50 USD (0.05 per share)."""

    class Meta:
        model = Option

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Pack {n}")
    pack_shares = 1000
    pack_price = Decimal("50")
