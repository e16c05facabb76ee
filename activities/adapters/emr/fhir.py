"""The hospital EMR over FHIR R4B (REST, JSON), read-only.

Most Chinese partners speak FHIR R4, so we exchange R4B (`fhir.resources.R4B`) and keep our own models inside.
Every response is validated against the R4B models; anything that does not validate is an `AdapterError`, as are
timeouts, transport failures, 5xx/408/429 and OperationOutcomes whose issues say "try again". Other refusals
(4xx, 401/403, errors in a 200) are `AdapterRefusal`: the same request cannot succeed on retry.

Searches used (all paged through `link[relation=next]`, which must stay on the EMR's origin, since the bearer
token goes with every request):
- `Patient?identifier=<id-card system>|<number>`, then the name is checked here too;
- `Organization?identifier=<hospital>` and `Organization?partof=…`: the hospital and its departments, because an
  encounter's serviceProvider is the hospital or one of its departments, and only those count;
- `Encounter?patient=…&date=ge…&status=finished&_include=Encounter:diagnosis&_include=Encounter:practitioner`;
- `Condition?patient=…&encounter=…` for diagnoses the include did not bring (a server may ignore `_include`, or
  link a Condition to its encounter only through `Condition.encounter`), and a read of any still missing;
- `DocumentReference?patient=…&date=ge…&status=current`.
Filters the server should apply (status, date) are applied again here: lenient servers ignore parameters they do
not support, and a wrongly admitted encounter would grant a revisit.

Error messages never carry the server's diagnostics or a query string: both can echo the ID-card number, and
adapter errors reach logs and workflow histories.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.resource import Resource
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.emr import DEFAULT_CODE_SYSTEMS, normalize_name
from activities.adapters.errors import AdapterError, AdapterRefusal
from core.settings import Settings
from models import idcard
from models.common import HOSPITAL_TZ
from models.emr import (
    CodeKind,
    DiagnosisCode,
    EmrAttachment,
    EmrDiagnosis,
    EmrDocument,
    EmrPatient,
    EncounterSetting,
)

# 居民身份证号码 as China's health-information standards name it (the OID of WS/T 500's patient ID-card identifier).
ID_CARD_SYSTEM = "urn:oid:2.16.156.10011.1.3"
FHIR_JSON = "application/fhir+json"

# v3 ActCode encounter classes that are offline visits; VR (virtual) never is. Matched on the code alone, since
# EMRs also send these codes under local systems.
DEFAULT_ENCOUNTER_CLASSES: dict[str, EncounterSetting] = {
    "AMB": EncounterSetting.AMBULATORY,
    "EMER": EncounterSetting.EMERGENCY,
    "IMP": EncounterSetting.INPATIENT,
    "ACUTE": EncounterSetting.INPATIENT,
    "NONAC": EncounterSetting.INPATIENT,
    "SS": EncounterSetting.INPATIENT,  # short stay (日间病房)
}
# OperationOutcome issue types a later retry may get past.
_RETRYABLE_ISSUES = frozenset(
    {"transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled"}
)
_REFUTED = frozenset({"refuted", "entered-in-error"})
# Participant types that name the doctor who made the diagnosis: primary performer, attender.
_DOCTOR_TYPES = ("PPRF", "ATND")
# References per `encounter=` or `partof=` search value, to keep URLs short.
_REFS_PER_QUERY = 20

R = TypeVar("R", bound=Resource)
_Params = list[tuple[str, str | int | float | bool | None]]


class FhirConfig(BaseModel):
    """How to reach the hospital's FHIR endpoint and recognise the hospital in it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str  # e.g. https://emr.hospital.example/fhir
    # The hospital's Organization.identifier (e.g. its 统一社会信用代码 under the system the EMR uses).
    hospital_identifier_system: str
    hospital_identifier_value: str
    patient_identifier_system: str = ID_CARD_SYSTEM
    bearer_token: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    page_size: int = Field(default=50, ge=1, le=1000)
    max_pages: int = Field(default=50, ge=1)
    encounter_classes: dict[str, EncounterSetting] = DEFAULT_ENCOUNTER_CLASSES
    code_systems: dict[str, CodeKind] = DEFAULT_CODE_SYSTEMS

    @field_validator("base_url")
    @classmethod
    def _http_base(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("base_url must be an http(s) URL")
        return value.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> FhirConfig:
        raw = settings.emr_fhir
        if not raw:
            raise ValueError("the fhir EMR adapter needs its configuration in QIHUANG_EMR_FHIR (JSON of FhirConfig)")
        return cls.model_validate(raw)


@dataclass
class _Found:
    """All pages of one search: the matches in order, and the included resources by local reference."""

    matches: list[Resource] = field(default_factory=list)
    included: dict[str, Resource] = field(default_factory=dict)

    def of(self, kind: type[R]) -> list[R]:
        return [r for r in self.matches if isinstance(r, kind)]


@dataclass
class _Hospital:
    """References that mean "this hospital": its Organization(s) and their departments (ref → department name)."""

    identifier: tuple[str, str]
    members: dict[str, str | None]


@dataclass
class _Visit:
    ref: str
    setting: EncounterSetting
    at: datetime
    department: str | None
    practitioner: str | None
    condition_refs: list[str]


class FhirEmr:
    name = "fhir"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        config: FhirConfig | None = None,
    ) -> None:
        # `sessions` is part of every adapter's constructor (see `registry.load_adapter`); the EMR keeps no state.
        self._config = config or FhirConfig.from_settings(settings)

    # --- Emr ---------------------------------------------------------------------------------------------------------

    async def find_patient(self, *, id_card_no: str, name: str) -> EmrPatient | None:
        number = idcard.normalize(id_card_no)
        system = self._config.patient_identifier_system
        async with self._client() as client:
            found = await self._search(client, "Patient", [("identifier", _token(system, number))])
        wanted = normalize_name(name)
        same = [
            patient
            for patient in found.of(Patient)
            if patient.active is not False
            and _has_identifier(patient.identifier, system, number, normalize=idcard.normalize)
            and wanted in _names(patient)
        ]
        if not same:
            return None
        if len(same) > 1:
            raise AdapterRefusal(
                "EMR_PATIENT_AMBIGUOUS", "医院电子病历系统中有多份与该身份证号和姓名相符的档案，请到线下窗口核对"
            )
        patient = same[0]
        return EmrPatient(
            ref=_key(patient),
            name=next(shown for shown in _names(patient, display=True) if normalize_name(shown) == wanted),
            gender=patient.gender,
            birth_date=_day(patient.birthDate),
        )

    async def offline_diagnoses(self, *, patient_ref: str, since: date) -> list[EmrDiagnosis]:
        params = [
            ("patient", patient_ref),
            ("date", f"ge{since.isoformat()}"),
            ("status", "finished"),
            ("_include", "Encounter:diagnosis"),
            ("_include", "Encounter:practitioner"),
        ]
        async with self._client() as client:
            hospital = await self._hospital(client)
            found = await self._search(client, "Encounter", params)
            visits = [
                visit
                for encounter in found.of(Encounter)
                if (visit := self._visit(encounter, hospital, found.included)) is not None
                and visit.at.astimezone(HOSPITAL_TZ).date() >= since
            ]
            conditions = await self._conditions(client, patient_ref, visits, found.included)
        diagnoses = [
            diagnosis
            for visit in visits
            for condition in conditions[visit.ref]
            if (diagnosis := self._diagnosis(visit, condition)) is not None
        ]
        return sorted(diagnoses, key=lambda d: d.diagnosed_at, reverse=True)

    async def documents(self, *, patient_ref: str, since: date) -> list[EmrDocument]:
        params = [("patient", patient_ref), ("date", f"ge{since.isoformat()}"), ("status", "current")]
        async with self._client() as client:
            found = await self._search(client, "DocumentReference", params)
        documents = [
            document
            for reference in found.of(DocumentReference)
            if (document := self._document(reference)) is not None
            and document.created_at.astimezone(HOSPITAL_TZ).date() >= since
        ]
        return sorted(documents, key=lambda d: d.created_at, reverse=True)

    # --- hospital, encounters, diagnoses -----------------------------------------------------------------------------

    async def _hospital(self, client: httpx.AsyncClient) -> _Hospital:
        identifier = (self._config.hospital_identifier_system, self._config.hospital_identifier_value)
        found = await self._search(client, "Organization", [("identifier", _token(*identifier))])
        members: dict[str, str | None] = {
            _key(org): None for org in found.of(Organization) if _has_identifier(org.identifier, *identifier)
        }
        # Departments, and their sub-departments, point at the hospital through Organization.partOf.
        frontier = sorted(members)
        while frontier:
            parents, frontier = frontier[:_REFS_PER_QUERY], frontier[_REFS_PER_QUERY:]
            found = await self._search(client, "Organization", [("partof", ",".join(parents))])
            for org in found.of(Organization):
                ref = _key(org)
                if ref not in members:
                    members[ref] = org.name
                    frontier.append(ref)
        return _Hospital(identifier=identifier, members=members)

    def _visit(self, encounter: Encounter, hospital: _Hospital, included: dict[str, Resource]) -> _Visit | None:
        if encounter.status != "finished":
            return None
        setting = self._config.encounter_classes.get(encounter.class_fhir.code or "")
        provider = encounter.serviceProvider
        at = _when(encounter.period)
        if setting is None or provider is None or at is None:
            return None
        if provider.identifier is not None and _has_identifier([provider.identifier], *hospital.identifier):
            department_org = None
        else:
            ref = self._local(provider.reference)
            if ref is None or ref not in hospital.members:
                return None
            department_org = hospital.members[ref]
        condition_refs = [
            ref
            for diagnosis in encounter.diagnosis or []
            if (ref := self._local(diagnosis.condition.reference)) is not None and ref.startswith("Condition/")
        ]
        return _Visit(
            ref=_key(encounter),
            setting=setting,
            at=at,
            department=_text(encounter.serviceType) or department_org or _location(encounter),
            practitioner=self._practitioner(encounter, included),
            condition_refs=condition_refs,
        )

    def _practitioner(self, encounter: Encounter, included: dict[str, Resource]) -> str | None:
        def rank(types: Iterable[CodeableConcept]) -> int:
            codes = {coding.code for concept in types for coding in concept.coding or []}
            return next((i for i, code in enumerate(_DOCTOR_TYPES) if code in codes), len(_DOCTOR_TYPES))

        people = sorted(
            (
                (rank(p.type or []), individual)
                for p in encounter.participant or []
                if (individual := p.individual) is not None
            ),
            key=lambda pair: pair[0],
        )
        for _, individual in people:
            if individual.display:
                return individual.display
            resource = included.get(self._local(individual.reference) or "")
            if isinstance(resource, Practitioner) and (names := _names(resource, display=True)):
                return names[0]
        return None

    async def _conditions(
        self, client: httpx.AsyncClient, patient_ref: str, visits: list[_Visit], included: dict[str, Resource]
    ) -> dict[str, list[Condition]]:
        """Each visit's Conditions: included ones first, then searched for by encounter, then read one by one."""
        by_visit: dict[str, dict[str, Condition]] = {}
        incomplete: list[_Visit] = []
        for visit in visits:
            by_visit[visit.ref] = {
                ref: resource for ref in visit.condition_refs if isinstance(resource := included.get(ref), Condition)
            }
            if not visit.condition_refs or len(by_visit[visit.ref]) < len(visit.condition_refs):
                incomplete.append(visit)
        for start in range(0, len(incomplete), _REFS_PER_QUERY):
            chunk = incomplete[start : start + _REFS_PER_QUERY]
            params = [("patient", patient_ref), ("encounter", ",".join(visit.ref for visit in chunk))]
            found = await self._search(client, "Condition", params)
            for condition in found.of(Condition):
                encounter_ref = self._local(condition.encounter.reference) if condition.encounter else None
                for visit in chunk:
                    if encounter_ref == visit.ref or _key(condition) in visit.condition_refs:
                        by_visit[visit.ref].setdefault(_key(condition), condition)
        for visit in incomplete:
            for ref in visit.condition_refs:
                if ref not in by_visit[visit.ref] and (read := await self._read(client, ref, Condition)) is not None:
                    by_visit[visit.ref][ref] = read
        return {ref: list(conditions.values()) for ref, conditions in by_visit.items()}

    def _diagnosis(self, visit: _Visit, condition: Condition) -> EmrDiagnosis | None:
        status = (
            {coding.code for coding in (condition.verificationStatus.coding or [])}
            if condition.verificationStatus
            else set()
        )
        if status & _REFUTED or condition.code is None:
            return None
        codes = [
            DiagnosisCode(
                kind=self._config.code_systems.get(coding.system or "", CodeKind.OTHER),
                system=coding.system or "",
                code=coding.code,
                display=coding.display,
            )
            for coding in condition.code.coding or []
            if coding.code
        ]
        name = _text(condition.code) or next((c.code for c in codes), None)
        if name is None:
            return None
        return EmrDiagnosis(
            encounter_ref=visit.ref,
            condition_ref=_key(condition),
            name=name,
            codes=codes,
            setting=visit.setting,
            diagnosed_at=visit.at,
            department=visit.department,
            practitioner=visit.practitioner,
        )

    def _document(self, reference: DocumentReference) -> EmrDocument | None:
        if reference.status != "current" or reference.date is None:
            return None
        attachments = [
            EmrAttachment(
                content_type=content.attachment.contentType,
                title=content.attachment.title,
                url=content.attachment.url,
                size=content.attachment.size,
                sha1_hex=_hex(content.attachment.hash),
                language=content.attachment.language,
            )
            for content in reference.content
        ]
        title = (
            reference.description
            or next((a.title for a in attachments if a.title), None)
            or _text(reference.type)
            or "病历文档"
        )
        encounters = reference.context.encounter if reference.context else None
        return EmrDocument(
            ref=_key(reference),
            title=title,
            type=_text(reference.type),
            created_at=reference.date,
            encounter_refs=[ref for r in encounters or [] if (ref := self._local(r.reference)) is not None],
            attachments=attachments,
        )

    # --- HTTP --------------------------------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        headers = {"Accept": FHIR_JSON}
        if self._config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self._config.bearer_token.get_secret_value()}"
        return httpx.AsyncClient(base_url=f"{self._config.base_url}/", headers=headers, timeout=self._config.timeout_s)

    async def _search(self, client: httpx.AsyncClient, resource_type: str, params: list[tuple[str, str]]) -> _Found:
        what = f"search {resource_type}"
        found = _Found()
        seen: set[str] = set()  # next links followed
        matched: set[str] = set()
        url = resource_type
        query: _Params | None = [
            *params,
            ("_count", self._config.page_size),
        ]
        for _ in range(self._config.max_pages):
            bundle = self._decode(await self._exchange(client, url, query, what), what, Bundle)
            if bundle.type != "searchset":
                raise AdapterError(f"EMR {what}: expected a searchset Bundle, got type {bundle.type!r}")
            for entry in bundle.entry or []:
                resource = entry.resource
                if resource is None or resource.id is None or isinstance(resource, OperationOutcome):
                    continue  # outcome entries carry warnings only; failures come as an error response
                mode = entry.search.mode if entry.search else None
                if mode == "include" or (mode is None and resource.get_resource_type() != resource_type):
                    found.included[_key(resource)] = resource
                elif _key(resource) not in matched:
                    # A record changed between pages can show up twice; keep the first.
                    matched.add(_key(resource))
                    found.matches.append(resource)
            link = next((link.url for link in bundle.link or [] if link.relation == "next"), None)
            if link is None:
                return found
            url, query = self._follow(link, what), None
            if url in seen:
                raise AdapterError(f"EMR {what}: the next links go round in a circle")
            seen.add(url)
        raise AdapterError(f"EMR {what}: more than {self._config.max_pages} pages")

    async def _read(self, client: httpx.AsyncClient, ref: str, kind: type[R]) -> R | None:
        """One resource by reference; None if the server no longer has it (a dangling reference is no diagnosis)."""
        what = f"read {kind.get_resource_type()}"
        response = await self._exchange(client, ref, None, what)
        if response.status_code in (404, 410):
            return None
        return self._decode(response, what, kind)

    async def _exchange(self, client: httpx.AsyncClient, url: str, params: _Params | None, what: str) -> httpx.Response:
        # `from None` throughout: httpx and pydantic messages may quote the URL or the data.
        try:
            return await client.get(url, params=params)
        except httpx.TimeoutException:
            raise AdapterError(f"EMR {what}: no answer within {self._config.timeout_s}s") from None
        except httpx.HTTPError as exc:
            raise AdapterError(f"EMR {what}: {type(exc).__name__}") from None

    def _decode(self, response: httpx.Response, what: str, kind: type[R]) -> R:
        data = _json(response)
        outcome = _outcome(data)
        if response.is_error or (outcome is not None and _errors(outcome)):
            raise _failure(response.status_code, outcome, what)
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if data is None or "json" not in media_type:
            raise AdapterError(f"EMR {what}: the answer is not FHIR JSON (HTTP {response.status_code}, {media_type})")
        try:
            return kind.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['type']}" for error in exc.errors()[:3]
            )
            raise AdapterError(f"EMR {what}: malformed {kind.get_resource_type()} ({problems})") from None

    def _follow(self, link: str, what: str) -> str:
        url = urljoin(f"{self._config.base_url}/", link)
        if urlsplit(url)[:2] != urlsplit(self._config.base_url)[:2]:
            raise AdapterError(f"EMR {what}: a next link leaves the EMR's origin")
        return url

    def _local(self, reference: str | None) -> str | None:
        """`Type/id` for a reference to a resource on this server (relative, or absolute under the base URL)."""
        if not reference or reference.startswith("#"):
            return None
        if "://" in reference:
            prefix = f"{self._config.base_url}/"
            if not reference.startswith(prefix):
                return None
            reference = reference[len(prefix) :]
        parts = reference.split("/_history/")[0].split("/")
        return "/".join(parts) if len(parts) == 2 and all(parts) else None


# --- helpers ---------------------------------------------------------------------------------------------------------


def _key(resource: Resource) -> str:
    return f"{resource.get_resource_type()}/{resource.id}"


def _token(system: str, value: str) -> str:
    """A `system|value` token search value, with FHIR's search escapes."""

    def escape(text: str) -> str:
        return "".join(f"\\{char}" if char in "\\|,$" else char for char in text)

    return f"{escape(system)}|{escape(value)}"


def _has_identifier(
    identifiers: Iterable[Identifier] | None, system: str, value: str, *, normalize: Callable[[str], str] = str.strip
) -> bool:
    return any(i.system == system and i.value is not None and normalize(i.value) == value for i in identifiers or [])


def _names(resource: Patient | Practitioner, *, display: bool = False) -> list[str]:
    """The resource's current names, normalized for comparison (or as shown, with `display`)."""
    result: list[str] = []
    for name in resource.name or []:
        if name.use == "old":
            continue
        for form in (name.text, _joined(name)):
            if form:
                result.append(form if display else normalize_name(form))
    return result


def _joined(name: HumanName) -> str:
    # Chinese order, no separator: family name first (张 + 三).
    return f"{name.family or ''}{''.join(given for given in name.given or [] if given)}"


def _text(concept: CodeableConcept | None) -> str | None:
    if concept is None:
        return None
    return concept.text or next((coding.display for coding in concept.coding or [] if coding.display), None)


def _location(encounter: Encounter) -> str | None:
    return next((loc.location.display for loc in encounter.location or [] if loc.location.display), None)


def _when(period: Period | None) -> datetime | None:
    """When an encounter happened, as it bears on the window: its end, or its start if it records no end."""
    if period is None:
        return None
    value: datetime | date | None = period.end or period.start
    if value is None:
        return None
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), HOSPITAL_TZ)  # a bare date is a hospital calendar day
    return value if value.tzinfo is not None else value.replace(tzinfo=HOSPITAL_TZ)


def _day(value: date | None) -> date | None:
    return value.date() if isinstance(value, datetime) else value


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = json.loads(response.content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _outcome(data: dict[str, Any] | None) -> OperationOutcome | None:
    if data is None or data.get("resourceType") != "OperationOutcome":
        return None
    try:
        return OperationOutcome.model_validate(data)
    except ValidationError:
        return None


def _errors(outcome: OperationOutcome) -> list[str]:
    return [issue.code for issue in outcome.issue if issue.severity in ("error", "fatal") and issue.code]


def _failure(status: int, outcome: OperationOutcome | None, what: str) -> Exception:
    issues = _errors(outcome) if outcome is not None else []
    # Issue types and the status only: diagnostics text may echo the query.
    detail = f"HTTP {status}" + (f", {', '.join(issues)}" if issues else "")
    if status >= 500 or status in (408, 429) or any(issue in _RETRYABLE_ISSUES for issue in issues):
        return AdapterError(f"EMR {what} failed ({detail})")
    if status in (401, 403):
        return AdapterRefusal("EMR_ACCESS_DENIED", f"医院电子病历系统拒绝访问（{detail}），请联系管理员检查接入凭据")
    return AdapterRefusal("EMR_QUERY_REJECTED", f"医院电子病历系统拒绝了查询（{detail}）")


def _hex(value: bytes | str | None) -> str | None:
    """Attachment.hash (base64 of the SHA-1) as hex; the models decode base64Binary to bytes, but be lenient."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except binascii.Error:
            return None
    return value.hex()
