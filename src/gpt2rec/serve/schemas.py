"""Request bodies of the HTTP API (pydantic): every field typed and bounded, unknown fields refused."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StringConstraints, field_validator

MAX_K = 100
MAX_BATCH = 256
MAX_LIKED = 100
MAX_PROFILE_FIELDS = 20

Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Int64 = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]  # orjson and the ID maps hold 64-bit integers
RawId = Int64 | Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
FieldValue = Int64 | StrictFloat | Annotated[str, StringConstraints(max_length=200)]
K = Annotated[int, Field(ge=1, le=MAX_K, description=f"number of items (1..{MAX_K})")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchRequest(Strict):
    user_ids: list[RawId] = Field(min_length=1, max_length=MAX_BATCH, description="raw user IDs, scored together")
    k: K = 10
    explain: bool = False


class ProfileRequest(Strict):
    profile: dict[Annotated[str, StringConstraints(min_length=1, max_length=40)], FieldValue] | None = Field(
        default=None, description='a new user\'s fields, e.g. {"gender": "F", "age": 31, "occupation": "writer"}'
    )
    liked: list[RawId] = Field(default_factory=list, max_length=MAX_LIKED, description="item IDs the user liked")
    k: K = 10

    @field_validator("profile")
    @classmethod
    def _few_fields(cls, value):
        if value is not None and len(value) > MAX_PROFILE_FIELDS:
            raise ValueError(f"at most {MAX_PROFILE_FIELDS} profile fields")
        return value


class QueryRequest(Strict):
    query: Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)] = Field(
        description='a request in plain words, e.g. "a funny animated film for kids"'
    )
    user_id: RawId | None = Field(default=None, description="blend with this user's own scores")
    blend: float = Field(default=0.5, ge=0.0, le=1.0, description="share of the user's scores (0: text only)")
    k: K = 10


class NewItem(Strict):
    item_id: RawId | None = Field(default=None, description="a fresh ID (default: the next free one)")
    title: Text
    genres: list[Annotated[str, StringConstraints(min_length=1, max_length=40, strip_whitespace=True)]] = Field(
        default_factory=list, max_length=20
    )
    year: int | None = Field(default=None, ge=1800, le=2200)


class Interaction(Strict):
    user_id: RawId
    item_id: RawId
    rating: float = Field(default=1.0, ge=-1e6, le=1e6, allow_inf_nan=False)
