"""How a written herb name becomes a lookup key, and which generic names stand for several species.

Matching is by whole name only. A substring test would make 白附子 an 附子 and 土贝母 a 贝母, both wrong.
"""

from __future__ import annotations

import re
import unicodedata

# Generic names a doctor may write that the pharmacopoeia splits into several monographs. A generic name is
# checked as every species it may mean, keeping the strictest result. 土贝母 (Cucurbitaceae) is deliberately
# not a 贝母, and 附子 is not an 乌头 here: the rhyme's 乌头 is the mother root (川乌/草乌) and their processed forms.
GENERIC_NAMES: dict[str, tuple[str, ...]] = {
    "贝母": ("川贝母", "浙贝母", "平贝母", "伊贝母", "湖北贝母"),
    "沙参": ("北沙参", "南沙参"),
    "芍药": ("白芍", "赤芍"),
    "大戟": ("京大戟", "红大戟"),
    "乌头": ("川乌", "制川乌", "草乌", "制草乌"),
}

# "半夏(生)" and "生半夏" are the same prescription line; folding the suffix into a prefix lets the raw-form
# lists of the toxic-drug regulation match either spelling.
_PROCESSING_SUFFIX = re.compile(r"^(?P<base>.+)\((?P<mark>生|生用|炙)\)$")


def normalize_name(written: str) -> str:
    """The key a written name is looked up by: NFKC (full-width brackets), no whitespace, "X(生)" → "生X"."""
    name = "".join(unicodedata.normalize("NFKC", written).split())
    match = _PROCESSING_SUFFIX.match(name)
    if match:
        name = match["mark"][0] + match["base"]
    return name
