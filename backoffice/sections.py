"""The admin's sections: models grouped by business, not by Django app.

A model is placed by its label (``app_label.ModelName``) first, then by its app; anything else
(third-party plumbing, a model added later) falls into the last section, so it is never lost.
Pure: the site passes in Django's app list and gets the sections back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    key: str
    name: str
    models: tuple[str, ...]  # model labels, in the order they are listed
    apps: tuple[str, ...] = ()  # app labels whose other models land here


SECTIONS: tuple[Section, ...] = (
    Section("members", "Members & wallets",
            ("accounts.User", "mlm.MemberNetwork", "accounts.LedgerEntry", "mlm.MemberStats", "mlm.RankHistory",
             "mlm.Notification", "accounts.WalletSettings"),
            apps=("accounts",)),
    Section("purchases", "Purchases",
            ("purchases.Purchase", "purchases.Refund", "mlm.PurchaseProcessing", "mlm.PurchasePreview",
             "purchases.Project", "purchases.Option"),
            apps=("purchases",)),
    Section("compensation", "Compensation",
            ("mlm.Bonus", "mlm.PoolRun", "mlm.ProcessedRefund", "mlm.Rank", "mlm.InvestmentTier",
             "mlm.PlanSettings"),
            apps=("mlm",)),
    # Money leaving: the monthly release of held bonuses, then members' withdrawals.
    Section("payouts", "Payouts", ("mlm.PayoutRun", "withdrawals.Withdrawal"), apps=("withdrawals",)),
    Section("buyback", "Buy-back",
            ("tokens.BuyOrderDashboard", "tokens.BuyOrder", "tokens.Revenue", "tokens.ExchangeRate",
             "tokens.BuyOrderConfig"),
            apps=("tokens",)),
    Section("import", "Import", ("legacy_import.ImportRun", "legacy_import.LegacyRecord"),
            apps=("legacy_import",)),
)
PLUMBING = Section("system", "System & access", ())


def section_of(label: str, sections: tuple[Section, ...] = SECTIONS) -> Section:
    """The section of a model label such as ``"mlm.Bonus"``."""
    for section in sections:
        if label in section.models:
            return section
    app_label = label.split(".", 1)[0]
    for section in sections:
        if app_label in section.apps:
            return section
    return PLUMBING


def _order(section: Section, label: str) -> tuple[int, str]:
    return (section.models.index(label), "") if label in section.models else (len(section.models), label)


def group(app_list: list[dict], url_of=lambda key: "", sections: tuple[Section, ...] = SECTIONS) -> list[dict]:
    """Django's app list (apps with their models) regrouped into sections, in business order,
    the plumbing last; each section looks like an app to the admin's templates."""
    placed: dict[str, list[tuple[tuple[int, str], dict]]] = {}
    for app in app_list:
        for model in app["models"]:
            label = f"{app['app_label']}.{model['object_name']}"
            section = section_of(label, sections)
            order = _order(section, label) if section is not PLUMBING else (0, f"{app['name']} {model['name']}")
            placed.setdefault(section.key, []).append((order, {**model, "app_label": app["app_label"]}))
    grouped = []
    for section in (*sections, PLUMBING):
        models = [model for _, model in sorted(placed.get(section.key, []), key=lambda pair: pair[0])]
        if models:
            grouped.append({"name": section.name, "app_label": section.key, "section": section.key,
                            "app_url": url_of(section.key), "has_module_perms": True, "models": models})
    return grouped
