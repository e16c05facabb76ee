"""Recorded histories (tests/histories/) replay against the current workflow code, so a change to a workflow's
sequence of commands that would break flows already running cannot land (DESIGN §8.5, §9 "Changing a running flow").

No server and no database: the Replayer runs the workflow code against each history offline. When one of these
fails, put the change behind `workflow.patched(...)`; do not re-record the history (tests/histories/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from core.settings import Settings
from core.temporal import data_converter
from tests.replay.altered import IdentityWithAnExtraStep, RevisitCheckWithoutTheExpiryTimer
from workers.worker import WORKFLOWS

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
FILES = sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    data = json.loads(path.read_text(encoding="utf-8"))
    started = data["events"][0].get("workflowExecutionStartedEventAttributes", {})
    return WorkflowHistory.from_json(started.get("workflowId", path.stem), data)


def workflow_type(path: Path) -> str:
    return json.loads(path.read_text(encoding="utf-8"))["events"][0]["workflowExecutionStartedEventAttributes"][
        "workflowType"
    ]["name"]


def defined_name(cls: type) -> str:
    name = workflow._Definition.must_from_class(cls).name
    assert name is not None
    return name


@pytest.fixture(scope="module")
def replayer(settings: Settings) -> Replayer:
    # The workers' converter: its decoding must pass these plaintext histories through.
    return Replayer(workflows=list(WORKFLOWS), data_converter=data_converter(settings))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
async def test_recorded_history_replays_against_current_code(path: Path, replayer: Replayer) -> None:
    result = await replayer.replay_workflow(load(path))  # raises NondeterminismError on a mismatch
    assert result.replay_failure is None


def test_every_workflow_has_a_recorded_history_named_after_its_type() -> None:
    assert FILES, f"no histories under {HISTORIES}; record them with `python -m tests.replay.record`"
    types = {workflow_type(p) for p in FILES}
    for path in FILES:
        assert path.stem.split("-", 1)[0] == workflow_type(path), f"{path.name} holds a {workflow_type(path)}"
    missing = {defined_name(cls) for cls in WORKFLOWS} - types
    assert not missing, f"no recorded history for {sorted(missing)}"


# --- the check bites: deliberately altered copies of two workflows (altered.py), under the real names ---


@pytest.mark.parametrize(
    ("altered", "history"),
    [
        (IdentityWithAnExtraStep, "IdentityVerification-verified.json"),
        (RevisitCheckWithoutTheExpiryTimer, "RevisitCheck-eligible_until_expiry_terminated.json"),
    ],
    ids=["extra-activity", "removed-timer"],
)
async def test_an_altered_workflow_fails_to_replay_its_history(altered: type, history: str, settings: Settings) -> None:
    replayer = Replayer(workflows=[altered], data_converter=data_converter(settings))
    with pytest.raises(workflow.NondeterminismError, match="TMPRL1100"):
        await replayer.replay_workflow(load(HISTORIES / history))
