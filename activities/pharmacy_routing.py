"""Which pharmacy dispenses a paid prescription (8.3.4.1, 8.3.7.1): the hospital's own or a partner pharmacy (社会药房).

The rule, in order:
1. 院内取药 goes to the hospital's own pharmacy; 药店取药 to the partner pharmacy the patient chose. Nothing else
   is tried: the patient goes there in person.
2. 配送到家 may go to any pharmacy that delivers to the address (its region prefixes; none listed: anywhere). The
   partner the patient named is tried first, then the own pharmacy and the partners in the configured preference,
   then by each partner's priority.
3. A pharmacy that cannot decoct is passed over when the patient asked for 代煎, and so is one whose adapter reports
   any herb short.
The first pharmacy left takes the prescription. The reason, and why each one before it was passed over, go to the
patient and staff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from activities.adapters.pharmacy import Pharmacy
from activities.adapters.registry import load_adapter
from core.settings import Settings
from models.fulfilment import OWN_PHARMACY, OWN_PHARMACY_NAME, PharmacyRoute, StockShortage
from models.prescription import PickupMethod
from models.tables import PartnerPharmacy


@dataclass(frozen=True)
class Candidate:
    pharmacy_id: str
    name: str
    adapter: str
    regions: tuple[str, ...]
    delivers: bool
    pickup: bool
    decoction: bool
    priority: int = 100

    @property
    def own(self) -> bool:
        return self.pharmacy_id == OWN_PHARMACY


@dataclass(frozen=True)
class RouteRequest:
    pickup: PickupMethod
    chosen: str | None
    decoction: bool
    # The delivery address (decrypted in the activity; never leaves it): only its region prefix is ever quoted.
    address: str


class NoPharmacy(Exception):
    """No pharmacy can take the prescription; `reason` says why each candidate could not."""

    def __init__(self, reason: str, retry: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        # A pharmacy could not be asked (its system is down): asking again later may find one.
        self.retry = retry


Shortages = Callable[[Candidate], Awaitable[list[StockShortage]]]


def region_of(address: str, regions: Sequence[str]) -> str | None:
    """The longest region prefix the address starts with; "" when the pharmacy delivers anywhere; None if outside."""
    if not regions:
        return ""
    compact = "".join(address.split())
    matching = [region for region in regions if compact.startswith("".join(region.split()))]
    return max(matching, key=len) if matching else None


def _pool(
    candidates: Sequence[Candidate], request: RouteRequest, prefer_own: bool
) -> tuple[list[tuple[Candidate, str | None]], str]:
    """The pharmacies that may take it, in the order they are tried, each with the region of its that covers the
    address ("" where no region applies; None: not covered), and the reason's opening words."""
    by_id = {c.pharmacy_id: c for c in candidates}
    if request.pickup is PickupMethod.HOSPITAL:
        return [(by_id[OWN_PHARMACY], "")], "院内取药"
    if request.pickup is PickupMethod.PHARMACY:
        chosen = by_id.get(request.chosen or "")
        if chosen is None or chosen.own or not chosen.pickup:
            raise NoPharmacy("所选药店已不再提供取药服务")
        return [(chosen, "")], f"患者选择到{chosen.name}取药"
    delivering = [(c, region_of(request.address, c.regions)) for c in candidates if c.delivers]
    # Pharmacies far away are no candidates at all, except the one the patient asked for: they hear why not.
    pool = [(c, region) for c, region in delivering if region is not None or c.pharmacy_id == request.chosen]
    pool.sort(
        key=lambda p: (p[0].pharmacy_id != request.chosen, p[0].own != prefer_own, p[0].priority, p[0].pharmacy_id)
    )
    return pool, "配送到家"


async def choose_pharmacy(
    candidates: Sequence[Candidate], request: RouteRequest, shortages: Shortages, prefer_own: bool = True
) -> PharmacyRoute:
    pool, opening = _pool(candidates, request, prefer_own)
    passed_over: list[str] = []
    unreachable = False
    for candidate, region in pool:
        why_not = None
        if region is None:
            why_not = "配送地址不在其配送范围内"
        elif request.decoction and not candidate.decoction:
            why_not = "不提供代煎"
        else:
            try:
                short = await shortages(candidate)
            except Exception:  # its system did not answer: try the others, and say so if none can take it
                unreachable, why_not = True, "药房系统暂时无法查询库存"
            else:
                if short:
                    why_not = (
                        "库存不足（" + "、".join(f"{s.herb}缺{s.needed_g - s.available_g:g}克" for s in short) + "）"
                    )
        if why_not is not None:
            passed_over.append(f"{candidate.name}：{why_not}")
            continue
        reasons = [opening]
        if region:
            reasons.append(f"配送地址在其配送范围（{region}）内")
        if request.pickup is PickupMethod.DELIVERY and candidate.pharmacy_id == request.chosen:
            reasons.append("患者选择的药店")
        if request.decoction:
            reasons.append("可代煎")
        reasons.append("饮片库存充足")
        return PharmacyRoute(
            pharmacy_id=candidate.pharmacy_id,
            name=candidate.name,
            own=candidate.own,
            reason="，".join(reasons),
            passed_over=passed_over,
        )
    detail = "；".join(passed_over) or "没有配送到该地址的药房"
    raise NoPharmacy(f"没有能够调剂该处方的药房：{detail}", retry=unreachable)


class PharmacyNetwork:
    """The pharmacies a prescription may go to: the hospital's own (from settings) and the active partners (from the
    `partner_pharmacies` table), each with its adapter."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings, own: Pharmacy) -> None:
        self._sessions = sessions
        self._settings = settings
        self._own = own
        self._adapters: dict[tuple[str, str], Pharmacy] = {}

    @property
    def prefer_own(self) -> bool:
        return self._settings.pharmacy_routing_prefer == "own"

    def own(self) -> Candidate:
        return Candidate(
            pharmacy_id=OWN_PHARMACY,
            name=OWN_PHARMACY_NAME,
            adapter=self._settings.adapter_pharmacy,
            regions=tuple(self._settings.own_pharmacy_regions),
            delivers=True,
            pickup=True,
            decoction=self._settings.own_pharmacy_decoction,
            priority=0,
        )

    async def candidates(self) -> list[Candidate]:
        async with self._sessions() as session:
            rows = (
                await session.execute(select(PartnerPharmacy).where(col(PartnerPharmacy.active).is_(True)))
            ).scalars()
            return [self.own(), *(partner_candidate(row) for row in rows)]

    async def adapter(self, pharmacy_id: str | None) -> Pharmacy:
        """The adapter of a pharmacy by id (None or "hospital": the own pharmacy); inactive partners included, so an
        order placed before a partner was switched off can still be cancelled."""
        if pharmacy_id in (None, OWN_PHARMACY):
            return self._own
        async with self._sessions() as session:
            row = await session.get(PartnerPharmacy, pharmacy_id)
        if row is None:
            raise LookupError(f"no partner pharmacy {pharmacy_id!r}")
        return self.adapter_for(partner_candidate(row))

    def adapter_for(self, candidate: Candidate) -> Pharmacy:
        if candidate.own:
            return self._own
        key = (candidate.pharmacy_id, candidate.adapter)
        if key not in self._adapters:
            self._adapters[key] = load_adapter(
                "pharmacy", candidate.adapter, self._sessions, self._settings, pharmacy_id=candidate.pharmacy_id
            )
        return self._adapters[key]


def partner_candidate(row: PartnerPharmacy) -> Candidate:
    return Candidate(
        pharmacy_id=row.id,
        name=row.name,
        adapter=row.adapter,
        regions=tuple(row.regions),
        delivers=row.delivers,
        pickup=row.pickup,
        decoction=row.decoction,
        priority=row.priority,
    )
