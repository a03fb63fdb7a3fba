"""Demo data: the worked examples of RULES.md, created idempotently (keyed by codes)."""

from decimal import Decimal
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from billing.clocks import clock_create
from billing.models import BillingThreshold, Clock, Customer, CustomerContact, Offer, Subscription
from metering.models import Meter
from metering.services import event_ingest_batch

from .models import AddOn, OfferService, Service, ServiceGroup
from .services import subscription_start
from .thresholds import billing_thresholds_set

STAFF = ("admin", "admin")
CUSTOMER_PASSWORD = "demo"
DEMO_CLOCK = "Demo: preview the month"

# R-L1: active automations (seat-based) and monthly actions (usage-based); None = unlimited.
AUTOMATION_PLANS = [
    ("free", "Free", 0, Decimal("0"), 5, 100),
    ("unlimited", "Unlimited", 1, Decimal("9.00"), 500, 1_000),
    ("business", "Business", 2, Decimal("29.00"), None, 10_000),
    ("business-plus", "Business Plus", 3, Decimal("79.00"), None, 25_000),
    ("enterprise", "Enterprise", 4, Decimal("499.00"), None, 250_000),
]
PACIFIC = "America/Los_Angeles"  # R-L3: limits reset on the 1st in UTC-8 (Pacific)


def _meter(name, event_name, aggregation="count", prop="", unit="", filter_=None) -> Meter:
    meter, _ = Meter.objects.update_or_create(
        name=name,
        defaults={
            "event_name": event_name,
            "aggregation": aggregation,
            "property": prop,
            "unit": unit,
            "filter": filter_,
        },
    )
    return meter


def _group(name, kind) -> ServiceGroup:
    return ServiceGroup.objects.update_or_create(name=name, defaults={"kind": kind})[0]


def _service(code, name, group, meter=None) -> Service:
    return Service.objects.update_or_create(
        code=code, defaults={"name": name, "group": group, "meter": meter}
    )[0]


def _offer(code, name, **fields) -> Offer:
    return Offer.objects.update_or_create(code=code, defaults={"name": name, **fields})[0]


def _offer_service(offer, service, **fields) -> OfferService:
    return OfferService.objects.update_or_create(offer=offer, service=service, defaults=fields)[0]


def _customer(external_id, name, contacts) -> Customer:
    customer = Customer.objects.update_or_create(
        external_id=external_id, defaults={"name": name, "email": contacts[0][0]}
    )[0]
    User = get_user_model()
    for email, role in contacts:
        user = User.objects.filter(username=email).first()
        if user is None:
            user = User.objects.create_user(email, email=email, password=CUSTOMER_PASSWORD)
        CustomerContact.objects.update_or_create(
            customer=customer, email=email, defaults={"role": role, "user": user}
        )
    return customer


def _subscribe(customer, offer, clock: Clock | None = None) -> Subscription:
    """Subscribed since the 1st of this month, local midnight in the offer's zone."""
    existing = Subscription.objects.filter(customer=customer, offer=offer).first()
    if existing:
        return existing
    now = clock.now if clock is not None else timezone.now()
    local_now = now.astimezone(ZoneInfo(offer.timezone))
    start = local_now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return subscription_start(customer=customer, offer=offer, start=start, clock=clock)


def _demo_clock() -> Clock:
    """A simulation clock (R-A5): an operator advances it in the console (Clocks → Advance)
    and watches the month end: invoices, resets, thresholds and alerts."""
    clock = Clock.objects.filter(name=DEMO_CLOCK).first()
    return clock or clock_create(name=DEMO_CLOCK, now=timezone.now())


def _addon(code, name, service, **fields) -> AddOn:
    return AddOn.objects.update_or_create(
        code=code, defaults={"name": name, "service": service, **fields}
    )[0]


# (customer, event name, how many, properties of the i-th event)
DEMO_USAGE = [
    ("cus_ofis", "print", 15, lambda i: {}),  # R-Q2: 15 prints -> 5 TL overage
    ("cus_acme", "action_run", 42, lambda i: {}),
    ("cus_acme", "automation_state", 1, lambda i: {"active": 7}),
    ("cus_acme", "llm_request", 2, lambda i: {"tokens": (100, 150)[i]}),  # R-M6: $75.00
    ("cus_globex", "action_run", 87, lambda i: {}),  # 87 of the Free plan's 100 (R-L1)
    ("cus_globex", "automation_state", 1, lambda i: {"active": 3}),
]


def _usage() -> None:
    """Some usage, so the customer pages show numbers; fixed event ids keep it idempotent."""
    now = timezone.now()
    events = [
        {
            "id": f"demo-{customer}-{name}-{i}",
            "name": name,
            "customer": customer,
            # "now": never before a demo subscription's start, whenever the demo is loaded.
            "timestamp": now.isoformat(),
            "properties": properties(i),
        }
        for customer, name, count, properties in DEMO_USAGE
        for i in range(count)
    ]
    event_ingest_batch(events=events, now=now)


@transaction.atomic
def demo_load() -> list[str]:
    User = get_user_model()
    if not User.objects.filter(username=STAFF[0]).exists():
        User.objects.create_superuser(STAFF[0], "admin@kota.localhost", STAFF[1])

    usage = _group("Usage-based", "usage_based")
    seats = _group("Seat-based", "seat_based")
    on_off = _group("Features", "on_off")

    # R-Q2: shared office, 10 prints included, 5 TL per started block of 10.
    prints_meter = _meter("Prints", "print", unit="prints")
    prints = _service("prints", "Printing", usage, prints_meter)
    support = _service("support-24-7", "24/7 support", on_off)
    office = _offer(
        "shared-office",
        "Shared office",
        currency="TRY",
        fixed_fee=Decimal("1500.00"),
        billing_interval="month",
        timezone="Europe/Istanbul",
        level=0,
    )
    _offer_service(
        office,
        prints,
        included=Decimal(10),
        reset_interval="billing_period",
        limit_behaviour="overage",
        pricing={"model": "package", "package_size": "10", "package_price": "5.00"},
    )
    _offer_service(office, support, enabled=True)

    # R-L1..R-L3: automation plans.
    actions_meter = _meter("Actions", "action_run", unit="actions")
    automations_meter = _meter(
        "Active automations",
        "automation_state",
        aggregation="last",
        prop="active",
        unit="automations",
    )
    actions = _service("monthly-actions", "Monthly actions", usage, actions_meter)
    automations = _service("active-automations", "Active automations", seats, automations_meter)
    premium = _service("premium-features", "Premium features", on_off)
    plans = {}
    for code, name, level, fee, active_limit, action_limit in AUTOMATION_PLANS:
        plan = _offer(
            code,
            name,
            currency="USD",
            fixed_fee=fee,
            billing_interval="month",
            timezone=PACIFIC,
            level=level,
        )
        _offer_service(
            plan,
            automations,
            included=None if active_limit is None else Decimal(active_limit),
            reset_interval="billing_period",
            limit_behaviour="block",
        )
        _offer_service(
            plan,
            actions,
            included=Decimal(action_limit),
            reset_interval="month",
            limit_behaviour="block",  # R-L2: suspended for the rest of the month
        )
        _offer_service(plan, premium, enabled=level >= 2)
        plans[code] = plan

    # R-L5: Business (level 2) and above may buy more quota; R-L6: prorated when bought.
    _addon(
        "more-actions",
        "More actions",
        actions,
        quantity=Decimal(10_000),
        price=Decimal("25.00"),
        min_level=2,
        description="10,000 more actions every month.",
    )
    _addon(
        "more-automations",
        "More active automations",
        automations,
        quantity=Decimal(100),
        price=Decimal("15.00"),
        min_level=2,
        description="100 more active automations.",
    )

    # R-M6: Tokens, 100 free per cycle, $0.50 a unit.
    tokens_meter = _meter("Tokens", "llm_request", aggregation="sum", prop="tokens", unit="tokens")
    tokens = _service("tokens", "AI tokens", usage, tokens_meter)
    ai = _offer(
        "ai-starter",
        "AI Starter",
        currency="USD",
        fixed_fee=Decimal("20.00"),
        billing_interval="month",
        timezone="UTC",
        level=1,
    )
    _offer_service(
        ai,
        tokens,
        included=Decimal(100),
        reset_interval="billing_period",
        limit_behaviour="overage",
        pricing={"model": "per_unit", "unit_price": "0.50"},
    )
    # R-M3: a filtered meter (premium users on one endpoint).
    _meter(
        "Premium v2 user calls",
        "api_call",
        unit="calls",
        filter_={
            "conjunction": "and",
            "clauses": [
                {"property": "user_tier", "operator": "equals", "value": "premium"},
                {"property": "endpoint", "operator": "equals", "value": "/api/v2/users"},
            ],
        },
    )

    acme = _customer(
        "cus_acme",
        "Acme Corp",
        [("owner@acme.test", "owner"), ("admin@acme.test", "admin"), ("dev@acme.test", "member")],
    )
    globex = _customer("cus_globex", "Globex", [("owner@globex.test", "owner")])
    ofis = _customer("cus_ofis", "Ofis Ltd", [("sahip@ofis.test", "owner")])
    _subscribe(acme, plans["business"])
    _subscribe(acme, ai)
    _subscribe(globex, plans["free"])
    _subscribe(ofis, office)
    preview = _customer("cus_preview", "Preview Ltd", [("owner@preview.test", "owner")])
    clock = _demo_clock()
    _subscribe(preview, office, clock)
    ai_preview = _subscribe(preview, ai, clock)
    if not BillingThreshold.objects.filter(subscription=ai_preview).exists():
        billing_thresholds_set(subscription=ai_preview, amount_gte="50.00")  # R-T1
    _usage()

    return [
        f"Demo ready: {Offer.objects.count()} offers, {Customer.objects.count()} customers, "
        f"{Subscription.objects.count()} subscriptions; clock {DEMO_CLOCK!r} for previews.",
        f"Staff login: {STAFF[0]} / {STAFF[1]}; customer logins: owner@acme.test / "
        f"{CUSTOMER_PASSWORD}",
    ]
