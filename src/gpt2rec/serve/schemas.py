"""Request bodies of the HTTP API (pydantic): every field typed and bounded, unknown fields refused."""

from __future__ import annotations

import math
import unicodedata
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

MAX_K = 100
MAX_BATCH = 256
MAX_LIKED = 100
MAX_PROFILE_FIELDS = 20


def _readable(value: str) -> str:
    """Text a reader can see: not only invisible characters (zero-width, BOM, no-break space), and
    no control or bidi-override character (U+202A-E, U+2066-9), which reorder the page's text."""
    bad = next((c for c in value if unicodedata.category(c) == "Cc" and c not in "\t\n\r" or "\u202a" <= c <= "\u202e"
                or "\u2066" <= c <= "\u2069"), None)  # fmt: skip
    if bad is not None:
        raise PydanticCustomError("text_control", "holds the control character U+{code}; remove it",
                                  {"code": f"{ord(bad):04X}"})  # fmt: skip
    if all(unicodedata.category(c) in ("Zs", "Zl", "Zp", "Cf") for c in value):
        raise PydanticCustomError("text_invisible", "has no visible character; write some words")
    return value


def _id_text(value: str) -> str:
    """A new item's ID: readable text, and no tab or line break either (it goes into TSV files)."""
    bad = next((c for c in value if c in "\t\n\r"), None)
    if bad is not None:
        raise PydanticCustomError("text_control", "holds the control character U+{code}; remove it",
                                  {"code": f"{ord(bad):04X}"})  # fmt: skip
    return _readable(value)


Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True), AfterValidator(_readable)]
Int64 = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]  # orjson and the ID maps hold 64-bit integers
RawId = Int64 | Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
# a new item's ID is stored for good, shown on the page and written to training files: readable text
NewId = (
    Int64
    | Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True), AfterValidator(_id_text)]
)
MAX_FIELD_TEXT = 200


def _field_value(value):
    """A profile value: a string or a finite number. Checked by hand because a union of int | float | str
    reports its first member's error ("should be a valid integer") whatever was actually wrong."""
    if value is None:
        # not "leave it out": a run needs every field it reads (/v1/health: user_fields, item_fields)
        raise PydanticCustomError("field_null", "is null; give a string or a number (the run reads every field)")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PydanticCustomError("field_type", "must be a string or a number, not {kind}", {"kind": _kind(value)})
    if isinstance(value, str) and len(value) > MAX_FIELD_TEXT:
        raise PydanticCustomError(
            "field_long", "is too long ({n} characters; at most {most})", {"n": len(value), "most": MAX_FIELD_TEXT}
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("field_finite", "must be a finite number, not {v}", {"v": str(value)})
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise PydanticCustomError("field_int64", "is too large (integers must fit in 64 bits)")
    return value


def _kind(value) -> str:
    return {bool: "true/false", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _blend(value):
    """blend: a finite number in [0, 1] (NaN used to pass as 'less than or equal to 1')."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise PydanticCustomError("blend", "must be a finite number in [0, 1], not {v}", {"v": repr(value)})
    return float(value)


def _not_bool(value):
    """JSON true/false is not a number: pydantic's lax mode read `"k": true` as k=1."""
    if isinstance(value, bool):
        raise PydanticCustomError("not_bool", "must be a number, not true/false")
    return value


FieldValue = Annotated[int | float | str, PlainValidator(_field_value, json_schema_input_type=int | float | str)]


def _few_fields(value: dict) -> dict:
    if len(value) > MAX_PROFILE_FIELDS:
        raise ValueError(f"at most {MAX_PROFILE_FIELDS} fields")
    return value


# a user's profile or an item's other columns: field name -> string or number
FieldMap = Annotated[
    dict[Annotated[str, StringConstraints(min_length=1, max_length=40)], FieldValue], AfterValidator(_few_fields)
]
K = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=MAX_K, description=f"number of items (1..{MAX_K})")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchRequest(Strict):
    user_ids: list[RawId] = Field(min_length=1, max_length=MAX_BATCH, description="raw user IDs, scored together")
    k: K = 10
    explain: bool = False


class ProfileRequest(Strict):
    profile: FieldMap | None = Field(
        default=None, description='a new user\'s fields, e.g. {"gender": "F", "age": 31, "occupation": "writer"}'
    )
    liked: list[RawId] = Field(default_factory=list, max_length=MAX_LIKED, description="item IDs the user liked")
    k: K = 10


class QueryRequest(Strict):
    query: Annotated[
        str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True), AfterValidator(_readable)
    ] = Field(description='a request in plain words, e.g. "a funny animated film for kids"')
    user_id: RawId | None = Field(default=None, description="blend with this user's own scores")
    blend: Annotated[float, PlainValidator(_blend, json_schema_input_type=float)] = Field(
        default=0.5,
        json_schema_extra={"minimum": 0, "maximum": 1},
        description="share of the user's scores (0: text only), a number in [0, 1]",
    )
    k: K = 10

    @field_validator("blend")
    @classmethod
    def _blend_needs_a_user(cls, value, info: ValidationInfo):
        if info.data.get("user_id") is None:  # silently ignored before (the CLI refuses it too)
            raise PydanticCustomError(
                "blend", "blend mixes in a user's own scores: give user_id too, or leave blend out"
            )
        return value


class NewItem(Strict):
    item_id: NewId | None = Field(default=None, description="a fresh ID (default: the next free one)")
    title: Text
    genres: list[Annotated[str, StringConstraints(min_length=1, max_length=40, strip_whitespace=True)]] = Field(
        default_factory=list, max_length=20
    )
    year: Annotated[int, BeforeValidator(_not_bool)] | None = Field(default=None, ge=1800, le=2200)
    fields: FieldMap | None = Field(
        default=None,
        description='the item\'s other columns, for a run whose items table has them, e.g. {"category": "jazz album"}',
    )


class Interaction(Strict):
    user_id: RawId
    item_id: RawId
    rating: Annotated[float, BeforeValidator(_not_bool)] = Field(
        default=1.0, ge=-1e6, le=1e6, allow_inf_nan=False, description="from 0 up to the run's highest rating"
    )


# ---- answers (documentation only: routes return plain dicts rendered by orjson, and a test checks real
# answers against /openapi.json, so these cannot drift from what the server sends) ----------------------
ItemId = int | str
UserRecord = dict[str, Any]  # a row of the users table: user_id and its profile fields


class ErrorBody(BaseModel):
    error: str = Field(description="what is wrong and how to fix it, in one line")
    field: str | None = Field(description="the request field at fault (dotted path), or null")


class Explanation(BaseModel):
    user_fields: dict[str, float] = Field(
        description="share of each user field (sums to 1; empty for item-item models)"
    )
    item_fields: dict[str, float] = Field(description="share of each item field")
    similar: list[ItemId] = Field(description="liked items closest to this one")
    similar_titles: list[str]
    reason: str


class Row(BaseModel):
    item_id: ItemId
    title: str
    score: float
    explanation: Explanation | None = Field(default=None, description="with explain=true")
    reason: str | None = Field(default=None, description="profile answers of neighbour-based models")
    text_score: float | None = Field(default=None, description="query answers: text similarity alone")
    collaborative: float | None = Field(default=None, description="similar-item answers: co-interaction cosine")
    text: float | None = Field(default=None, description="similar-item answers: text cosine")


class UserAnswer(BaseModel):
    user_id: ItemId
    items: list[Row]
    note: str | None = Field(default=None, description="only when the list means nothing for this user")


class BatchAnswer(BaseModel):
    results: list[UserAnswer]


class Rows(BaseModel):
    items: list[Row]


class SimilarAnswer(Rows):
    item_id: ItemId


class Health(BaseModel):
    status: str
    version: str
    model: str
    lm: str | None
    lm_loaded: bool
    users: int
    items: int
    catalogue_items: int
    can_add_items: bool
    can_explain: bool
    user_fields: list[str]
    item_fields: list[str] = Field(
        description="an added item's `fields` this run reads (its items table's own columns)"
    )
    reads_genres: bool = Field(description="whether an added item's genres are read (else they are refused)")
    new_items: int
    new_interactions: int
    batches: int
    batched_requests: int


class AddedItem(BaseModel):
    item_id: ItemId
    title: str
    note: str | None = Field(
        default=None, description="only when this model's new items rarely rank next to known ones"
    )


class AddedInteraction(BaseModel):
    user_id: ItemId
    item_id: ItemId
    rating: float
