"""A minimal FHIR R4B server, standing in for a hospital's EMR in tests.

`FhirPeer` is an ASGI app (Starlette) holding `fhir.resources.R4B` models in memory. It answers
`GET [base]/{type}?…` searches for Patient, Organization, Encounter, Condition and DocumentReference as searchset
Bundles (`_count` paging with absolute next links, `_include`), and `GET [base]/{type}/{id}` reads, all as
`application/fhir+json`. Parameters it does not know are refused with an OperationOutcome (strict handling), so a
client's mistake shows up in a test instead of silently matching everything.

`await peer.start()` serves it with uvicorn on a free 127.0.0.1 port inside the running event loop; `peer.base_url`
is then the FHIR base. Faults apply to the next N requests: `fail_next` (an error status with an OperationOutcome),
`delay_next` (answer late), `answer_next` (any body). `honour_include = False` makes it ignore `_include`, as some
servers do. Every request is logged in `requests`.

`EmrTestData` builds the resources a hospital's EMR would hold (its Organization and a department, another
hospital, patients, practitioners, encounters with their Conditions, documents) and implements the contract's
`EmrSimulator`.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fhir.resources.R4B.attachment import Attachment
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntrySearch, BundleLink
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.documentreference import DocumentReference, DocumentReferenceContent, DocumentReferenceContext
from fhir.resources.R4B.encounter import Encounter, EncounterDiagnosis, EncounterParticipant
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.operationoutcome import OperationOutcome, OperationOutcomeIssue
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activities.adapters.emr.fhir import ID_CARD_SYSTEM, FhirConfig
from models import idcard
from models.common import HOSPITAL_TZ
from models.emr import DiagnosisCode
from tests.simulators.serving import serve

FHIR_JSON = "application/fhir+json"
BASE_PATH = "/fhir"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
HOSPITAL_SYSTEM = "http://example.org/fhir/sid/uscc"  # example.org: reserved for tests and documentation
HOSPITAL_ID = "12100000400000001A"
OTHER_HOSPITAL_ID = "12100000400000002B"

# (resource, values of one parameter occurrence, comma-separated alternatives already split) -> matches?
Matcher = Callable[[Any, list[str]], bool]


class BadRequest(Exception):
    """A search the peer refuses; answered as HTTP 400 with an OperationOutcome."""

    def __init__(self, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.code = code
        self.diagnostics = diagnostics


@dataclass(frozen=True)
class Fault:
    status: int = 200
    delay_s: float = 0.0
    body: bytes | None = None
    content_type: str = FHIR_JSON


@dataclass(frozen=True)
class LoggedRequest:
    path: str
    query: list[tuple[str, str]]
    authorization: str | None

    @property
    def resource_type(self) -> str:
        return self.path.removeprefix(f"{BASE_PATH}/").split("/")[0]


def outcome(code: str, diagnostics: str, severity: str = "error") -> OperationOutcome:
    return OperationOutcome(issue=[OperationOutcomeIssue(severity=severity, code=code, diagnostics=diagnostics)])


def ref(resource: Resource) -> str:
    return f"{resource.get_resource_type()}/{resource.id}"


# --- search parameters -----------------------------------------------------------------------------------------------


def _reference(get: Callable[[Any], Reference | None]) -> Matcher:
    def match(resource: Any, values: list[str]) -> bool:
        target = get(resource)
        return target is not None and target.reference in values

    return match


def _token(get: Callable[[Any], str | None]) -> Matcher:
    def match(resource: Any, values: list[str]) -> bool:
        return get(resource) in values

    return match


def _identifier(resource: Any, values: list[str]) -> bool:
    for value in values:
        system, _, code = value.rpartition("|") if "|" in value else ("", "", value)
        for identifier in resource.identifier or []:
            if identifier.value == code and (not system or identifier.system == system):
                return True
    return False


def _bounds(value: date | datetime) -> tuple[datetime, datetime]:
    """The instant range a FHIR date or dateTime stands for (a bare date is a whole hospital day)."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=HOSPITAL_TZ)
        return moment, moment
    start = datetime.combine(value, time(), HOSPITAL_TZ)
    return start, start + timedelta(days=1)


_LOWEST = datetime.min.replace(tzinfo=HOSPITAL_TZ)
_HIGHEST = datetime.max.replace(tzinfo=HOSPITAL_TZ)


def _date(get: Callable[[Any], tuple[date | datetime | None, date | datetime | None]]) -> Matcher:
    """Date search with the prefixes ge, gt, le and lt, following FHIR's range semantics."""

    def match(resource: Any, values: list[str]) -> bool:
        start, end = get(resource)
        low = _bounds(start)[0] if start is not None else _LOWEST
        high = _bounds(end)[1] if end is not None else _HIGHEST
        for value in values:
            prefix, text = value[:2], value[2:]
            if prefix not in ("ge", "gt", "le", "lt"):
                raise BadRequest("not-supported", f"date prefix {prefix!r} is not supported")
            try:
                parsed: date | datetime = datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
            except ValueError:
                raise BadRequest("invalid", f"bad date {text!r}") from None
            lower, upper = _bounds(parsed)
            hit = {"ge": high >= lower, "gt": high > upper, "le": low <= upper, "lt": low < lower}[prefix]
            if hit:
                return True
        return False

    return match


def _period(encounter: Encounter) -> tuple[date | datetime | None, date | datetime | None]:
    period = encounter.period
    return (period.start, period.end) if period else (None, None)


SEARCH: dict[str, dict[str, Matcher]] = {
    "Patient": {"identifier": _identifier},
    "Organization": {"identifier": _identifier, "partof": _reference(lambda o: o.partOf)},
    "Encounter": {
        "patient": _reference(lambda e: e.subject),
        "date": _date(_period),
        "status": _token(lambda e: e.status),
    },
    "Condition": {"patient": _reference(lambda c: c.subject), "encounter": _reference(lambda c: c.encounter)},
    "DocumentReference": {
        "patient": _reference(lambda d: d.subject),
        "date": _date(lambda d: (d.date, d.date)),
        "status": _token(lambda d: d.status),
    },
}

INCLUDES: dict[str, Callable[[Any], list[Reference]]] = {
    "Encounter:diagnosis": lambda e: [d.condition for d in e.diagnosis or []],
    "Encounter:practitioner": lambda e: [
        p.individual
        for p in e.participant or []
        if p.individual is not None and (p.individual.reference or "").startswith("Practitioner/")
    ],
}


class FhirPeer:
    def __init__(self) -> None:
        self.store: dict[str, dict[str, Resource]] = {kind: {} for kind in [*SEARCH, "Practitioner"]}
        self.requests: list[LoggedRequest] = []
        self.honour_include = True
        self._faults: deque[Fault] = deque()
        self._serving = AsyncExitStack()
        self.base_url = ""
        self.app = Starlette(
            routes=[
                Route(f"{BASE_PATH}/{{kind}}", self._search),
                Route(f"{BASE_PATH}/{{kind}}/{{id}}", self._read),
            ]
        )

    # --- lifecycle and test controls ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self.base_url = await self._serving.enter_async_context(serve(self.app)) + BASE_PATH

    async def stop(self) -> None:
        await self._serving.aclose()

    def add(self, *resources: Resource) -> None:
        for resource in resources:
            assert resource.id, "stored resources need an id"
            self.store.setdefault(resource.get_resource_type(), {})[resource.id] = resource

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        self._faults.extend([Fault(status=status)] * n)

    def delay_next(self, n: int = 1, *, seconds: float) -> None:
        self._faults.extend([Fault(delay_s=seconds)] * n)

    def answer_next(self, body: bytes, *, n: int = 1, status: int = 200, content_type: str = FHIR_JSON) -> None:
        self._faults.extend([Fault(status=status, body=body, content_type=content_type)] * n)

    def reset(self) -> None:
        self._faults.clear()
        self.requests.clear()
        self.honour_include = True

    def searches(self, resource_type: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.resource_type == resource_type and r.path.count("/") == 2]

    # --- HTTP --------------------------------------------------------------------------------------------------------

    async def _search(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        return await self._answer(request, lambda: self._bundle(request, kind))

    async def _read(self, request: Request) -> Response:
        kind, id_ = request.path_params["kind"], request.path_params["id"]

        def read() -> Resource:
            found = self.store.get(kind, {}).get(id_)
            if found is None:
                raise LookupError(f"{kind}/{id_}")
            return found

        return await self._answer(request, read)

    async def _answer(self, request: Request, produce: Callable[[], Resource]) -> Response:
        self.requests.append(
            LoggedRequest(
                request.url.path, list(request.query_params.multi_items()), request.headers.get("authorization")
            )
        )
        fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.body is not None:
            return Response(fault.body, status_code=fault.status, media_type=fault.content_type)
        if fault is not None and fault.status >= 400:
            return _fhir(outcome("exception", "injected failure"), fault.status)
        try:
            return _fhir(produce(), 200)
        except BadRequest as exc:
            return _fhir(outcome(exc.code, exc.diagnostics), 400)
        except LookupError as exc:
            return _fhir(outcome("not-found", f"{exc} is not known"), 404)

    def _bundle(self, request: Request, kind: str) -> Bundle:
        matchers = SEARCH.get(kind)
        if matchers is None:
            raise BadRequest("not-supported", f"searching {kind} is not supported")
        params = list(request.query_params.multi_items())
        count, offset, includes = 20, 0, []
        conditions: list[tuple[Matcher, list[str]]] = []
        for name, value in params:
            if name == "_count":
                count = _whole(value, name)
            elif name == "_offset":
                offset = _whole(value, name)
            elif name == "_include":
                if value not in INCLUDES or not value.startswith(f"{kind}:"):
                    raise BadRequest("not-supported", f"_include={value} is not supported")
                includes.append(value)
            elif name in matchers:
                conditions.append((matchers[name], value.split(",")))
            else:
                raise BadRequest("not-supported", f"search parameter {name!r} is not supported for {kind}")
        matches = [r for r in self.store[kind].values() if all(m(r, values) for m, values in conditions)]
        page = matches[offset : offset + count]
        base = f"{request.url.scheme}://{request.url.netloc}{BASE_PATH}"
        entries = [
            BundleEntry(fullUrl=f"{base}/{ref(r)}", resource=r, search=BundleEntrySearch(mode="match")) for r in page
        ]
        if self.honour_include:
            entries += [
                BundleEntry(fullUrl=f"{base}/{ref(r)}", resource=r, search=BundleEntrySearch(mode="include"))
                for r in self._included(page, includes)
            ]
        kept = [(name, value) for name, value in params if name != "_offset"]
        links = [BundleLink(relation="self", url=f"{base}/{kind}?{urlencode(params)}")]
        if offset + count < len(matches):
            next_query = urlencode([*kept, ("_offset", str(offset + count))])
            links.append(BundleLink(relation="next", url=f"{base}/{kind}?{next_query}"))
        return Bundle(type="searchset", total=len(matches), link=links, entry=entries or None)

    def _included(self, page: Iterable[Resource], includes: list[str]) -> list[Resource]:
        found: dict[str, Resource] = {}
        for resource in page:
            for include in includes:
                for reference in INCLUDES[include](resource):
                    kind, _, id_ = (reference.reference or "").partition("/")
                    target = self.store.get(kind, {}).get(id_)
                    if target is not None:
                        found.setdefault(ref(target), target)
        return list(found.values())


def _whole(value: str, name: str) -> int:
    if not value.isdigit():
        raise BadRequest("invalid", f"{name} must be a whole number")
    return int(value)


def _fhir(resource: Resource, status: int) -> Response:
    return Response(resource.model_dump_json(), status_code=status, media_type=FHIR_JSON)


# --- test data -------------------------------------------------------------------------------------------------------


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def coding(code: DiagnosisCode) -> Coding:
    return Coding(system=code.system, code=code.code, display=code.display)


class EmrTestData:
    """What the hospital's EMR holds, built as R4B resources in a `FhirPeer`; the contract's `EmrSimulator`."""

    def __init__(self, peer: FhirPeer) -> None:
        self.peer = peer
        self.hospital = Organization(
            id="hospital",
            name="岐黄中医医院",
            identifier=[Identifier(system=HOSPITAL_SYSTEM, value=HOSPITAL_ID)],
        )
        self.department = Organization(id="dept-pw", name="脾胃病科", partOf=Reference(reference=ref(self.hospital)))
        self.other_hospital = Organization(
            id="elsewhere", name="另一家医院", identifier=[Identifier(system=HOSPITAL_SYSTEM, value=OTHER_HOSPITAL_ID)]
        )
        peer.add(self.hospital, self.department, self.other_hospital)

    def config(self, **overrides: Any) -> FhirConfig:
        return FhirConfig(
            base_url=self.peer.base_url,
            hospital_identifier_system=HOSPITAL_SYSTEM,
            hospital_identifier_value=HOSPITAL_ID,
            **overrides,
        )

    # --- EmrSimulator ------------------------------------------------------------------------------------------------

    async def add_patient(self, *, id_card_no: str, name: str) -> str:
        return ref(self.patient(id_card_no=id_card_no, name=name))

    async def add_encounter(
        self,
        *,
        patient_ref: str,
        on: date,
        diagnosis_name: str,
        codes: Sequence[DiagnosisCode],
        department: str = "中医内科",
        practitioner: str = "王医生",
        finished: bool = True,
        elsewhere: bool = False,
    ) -> str:
        condition = self.condition(patient_ref, diagnosis_name, codes)
        encounter = self.encounter(
            patient_ref,
            on,
            [condition],
            department=department,
            practitioner=self.practitioner(practitioner),
            status="finished" if finished else "in-progress",
            provider=Reference(reference=ref(self.other_hospital if elsewhere else self.hospital)),
        )
        return ref(encounter)

    async def add_document(
        self,
        *,
        patient_ref: str,
        title: str,
        on: date,
        content_type: str,
        size: int | None = None,
        sha1_hex: str | None = None,
    ) -> str:
        return ref(self.document(patient_ref, on, title=title, content_type=content_type, size=size, sha1_hex=sha1_hex))

    # --- builders for tests that need more than the contract ---------------------------------------------------------

    def patient(self, *, id_card_no: str, name: str, active: bool = True, **fields: Any) -> Patient:
        patient = Patient(
            id=new_id(),
            active=active,
            identifier=[Identifier(system=ID_CARD_SYSTEM, value=idcard.normalize(id_card_no))],
            name=[HumanName(text=name, family=name[0], given=[name[1:]])],
            gender=idcard.sex(id_card_no),
            birthDate=idcard.birth_date(id_card_no),
            **fields,
        )
        self.peer.add(patient)
        return patient

    def practitioner(self, name: str) -> Practitioner:
        practitioner = Practitioner(id=new_id(), name=[HumanName(family=name[0], given=[name[1:]])])
        self.peer.add(practitioner)
        return practitioner

    def condition(
        self,
        patient_ref: str,
        name: str,
        codes: Sequence[DiagnosisCode],
        *,
        encounter_ref: str | None = None,
        verification: str = "confirmed",
    ) -> Condition:
        condition = Condition(
            id=new_id(),
            subject=Reference(reference=patient_ref),
            encounter=Reference(reference=encounter_ref) if encounter_ref else None,
            code=CodeableConcept(text=name, coding=[coding(c) for c in codes]),
            verificationStatus=CodeableConcept(coding=[Coding(system=VERIFICATION, code=verification)]),
        )
        self.peer.add(condition)
        return condition

    def encounter(
        self,
        patient_ref: str,
        on: date,
        conditions: Sequence[Condition],
        *,
        department: str | None = "中医内科",
        practitioner: Practitioner | None = None,
        status: str = "finished",
        encounter_class: str = "AMB",
        provider: Reference | None = None,
        days: int = 0,
        list_diagnoses: bool = True,
    ) -> Encounter:
        """An encounter starting at 10:00 on `on` and ending `days` later; its Conditions point back at it."""
        start = datetime.combine(on, time(10), HOSPITAL_TZ)
        encounter = Encounter(
            id=new_id(),
            status=status,
            class_fhir=Coding(system=ACT_CODE, code=encounter_class),
            subject=Reference(reference=patient_ref),
            period=Period(start=start, end=start + timedelta(days=days, minutes=20)),
            serviceProvider=provider or Reference(reference=ref(self.hospital)),
            serviceType=CodeableConcept(text=department) if department else None,
            participant=[
                EncounterParticipant(
                    type=[CodeableConcept(coding=[Coding(system=PARTICIPATION_TYPE, code="PPRF")])],
                    individual=Reference(reference=ref(practitioner)),
                )
            ]
            if practitioner
            else None,
            diagnosis=[EncounterDiagnosis(condition=Reference(reference=ref(c))) for c in conditions]
            if list_diagnoses and conditions
            else None,
        )
        for condition in conditions:
            condition.encounter = Reference(reference=ref(encounter))
        self.peer.add(encounter)
        return encounter

    def document(
        self,
        patient_ref: str,
        on: date,
        *,
        title: str,
        content_type: str = "application/pdf",
        size: int | None = None,
        sha1_hex: str | None = None,
        status: str = "current",
        encounter: Encounter | None = None,
    ) -> DocumentReference:
        digest = base64.b64encode(bytes.fromhex(sha1_hex)).decode() if sha1_hex else None
        document = DocumentReference(
            id=new_id(),
            status=status,
            subject=Reference(reference=patient_ref),
            date=datetime.combine(on, time(11), HOSPITAL_TZ),
            description=title,
            context=DocumentReferenceContext(encounter=[Reference(reference=ref(encounter))]) if encounter else None,
            content=[DocumentReferenceContent(attachment=Attachment(contentType=content_type, size=size, hash=digest))],
        )
        self.peer.add(document)
        return document
