"""The medical-practitioner registry (国家卫健委 医师执业注册信息): is this licence registered, to this person, valid?

8.5.2.3: a doctor's details must be verifiable in the national practitioner registration system. The onboarding flow
asks once per submission; the answer's first registration date also counts toward the three years of practice.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from models.onboarding import PractitionerRecord


@runtime_checkable
class PractitionerRegistry(Protocol):
    async def lookup(self, *, idempotency_key: str, name: str, licence_no: str, id_card_no: str) -> PractitionerRecord:
        """The registry's entry for `licence_no`, compared with the applicant's name and ID number. A licence the
        registry does not know is `found=False` with a zh-CN reason, not an error."""
        ...
