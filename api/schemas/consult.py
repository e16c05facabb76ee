"""Consultation chat and calls: what clients send and get back, over HTTP and over the chat socket."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.common import Role
from models.consult import CallMedia, MessageKind, RtcRoom

# What a client may use as its own message id: 1–64 visible ASCII characters (a UUID is the usual choice).
CLIENT_MSG_ID = Field(
    default=None,
    min_length=1,
    max_length=64,
    pattern=r"^[\x21-\x7e]+$",
    description="客户端生成的消息编号；同一发送者在同一问诊内重复发送同一编号时，返回首次保存的消息",
    examples=["6f1c2b9e-3d4a-4c8e-9a51-2f7d0b1e8c3a"],
)
MAX_TEXT_CHARS = 4000


class MediaOut(BaseModel):
    content_type: str = Field(examples=["image/jpeg"])
    size_bytes: int = Field(examples=[183_204])
    sm3: str = Field(description="文件内容（明文）的 SM3 摘要，十六进制", examples=["66c7f0f4…"])
    url: str = Field(description="下载地址（需登录）", examples=["/api/v1/visits/v-1/messages/42/media"])


class MessageOut(BaseModel):
    id: int = Field(description="消息编号，在同一问诊内递增；作为 after 游标使用", examples=[42])
    visit_id: str
    kind: MessageKind
    sender_user_id: str | None = Field(description="系统消息为空")
    sender_role: Role | None
    body: str | None = Field(
        description="文字内容；通话消息为通话说明；图片与语音为空", examples=["医生您好，我这两天胃胀好些了。"]
    )
    media: MediaOut | None
    call_id: str | None = Field(description="通话消息所属的通话")
    client_msg_id: str | None
    created_at: datetime


class ReadOut(BaseModel):
    user_id: str
    role: Role
    last_read_id: int = Field(description="已读到的消息编号（含）", examples=[42])
    updated_at: datetime


class HistoryOut(BaseModel):
    items: list[MessageOut] = Field(description="按编号从旧到新")
    has_more: bool = Field(description="之后还有消息：以 next_after 为 after 继续获取")
    next_after: int | None = Field(description="本页最后一条消息的编号；本页为空时为空")
    reads: list[ReadOut] = Field(description="各参与者的已读位置")


class TextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal[MessageKind.TEXT] = MessageKind.TEXT
    body: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, examples=["医生您好，我这两天胃胀好些了。"])
    client_msg_id: str | None = CLIENT_MSG_ID

    @field_validator("body")
    @classmethod
    def _not_blank(cls, body: str) -> str:
        if not body.strip():
            raise ValueError("消息内容不能为空")
        return body


class MediaForm(BaseModel):
    """The form fields sent with an uploaded file (multipart/form-data; the file itself is the `file` part)."""

    kind: Literal[MessageKind.IMAGE, MessageKind.VOICE]
    client_msg_id: str | None = CLIENT_MSG_ID


class ReadIn(BaseModel):
    up_to: int = Field(ge=1, le=2**63 - 1, description="已读到的消息编号（含）", examples=[42])


class CallIn(BaseModel):
    media: CallMedia = Field(default=CallMedia.VIDEO, description="audio：语音通话；video：视频通话")


class CallOut(BaseModel):
    call_id: str
    visit_id: str
    media: CallMedia
    room: RtcRoom
    token: str = Field(description="本人加入该房间的令牌")
    token_expires_at: datetime
    started_by: str
    started_at: datetime


class CallEndOut(BaseModel):
    call_id: str
    visit_id: str
    media: CallMedia
    started_at: datetime
    ended_at: datetime
    ended_by: str | None
    duration_s: int = Field(description="通话时长（秒）", examples=[192])
